"""The web page's browser tests: a real deployment (uvicorn, a Celery worker, PostgreSQL, Redis, a local blob folder,
the inference server on the `tiny` checkpoint) and one headless Debian chromium driven by Playwright, shared by every
test of the package. Screenshots go to a temporary folder whose path the tests print (never into the repo)."""

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from pipeline.records.db import make_engine, session_factory, transaction
from pipeline.records.models import new_id
from pipeline.records.tenants import create_api_key, create_tenant
from tests.helpers.services import (
    ROOT,
    free_port,
    need_service,
    redis_db,
    start_worker,
    stop,
    uvicorn_api,
    wait_healthy,
)

CHROMIUM = os.environ.get("WHOLEDOC_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
AXE = ROOT / ".venv" / "npm" / "node_modules" / "axe-core" / "axe.min.js"


class Stack:
    """The deployment the browser talks to; `use_inference(url)` restarts the worker on another endpoint."""

    def __init__(self, env: dict, logs: Path, records, real_inference: str):
        self.env, self.logs, self.records, self.real_inference = env, logs, records, real_inference
        self.worker = start_worker(env, logs / "worker.log", name="web")
        self.url = ""

    def use_inference(self, url: str, model: str | None = None) -> None:
        stop(self.worker)
        env = {**self.env, "WHOLEDOC_INFERENCE_URL": url} | ({"WHOLEDOC_MODEL": model} if model else {})
        self.worker = start_worker(env, self.logs / "worker.log", name=f"web-{new_id()[:6]}")

    def tenant_key(self, prefix: str = "web") -> tuple[str, str]:
        with transaction(self.records) as s:
            tenant = create_tenant(s, f"{prefix}-{new_id()}")
            _, key = create_api_key(s, tenant.id)
        return tenant.id, key


@pytest.fixture(scope="package")
def stack(scratch_pg, redis_url, tiny_checkpoint, tmp_path_factory):
    # its own database and Redis database: the page shows queue positions, which count every queued job on a queue
    pg_url = scratch_pg()
    logs = tmp_path_factory.mktemp("web-stack")
    port = free_port()
    inference = subprocess.Popen([sys.executable, "-m", "inference.serve", "--checkpoint", str(tiny_checkpoint),
                                  "--port", str(port), "--max-num-batched-tokens", "8", "--progress-interval",
                                  "0.05"], stdout=(logs / "inference.log").open("wb"), stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    engine = make_engine(pg_url)
    stack = None
    try:
        wait_healthy(base, inference, f"inference server (log: {logs / 'inference.log'})", 180)
        env = {"WHOLEDOC_DATABASE_URL": pg_url, "WHOLEDOC_BROKER_URL": redis_db(redis_url, 14),  # own queues
               "WHOLEDOC_BLOB_URL": f"file://{logs / 'blobs'}", "WHOLEDOC_INFERENCE_URL": f"{base}/v1",
               "WHOLEDOC_LEASE_SECONDS": "3", "WHOLEDOC_SSE_POLL_SECONDS": "0.05", "WHOLEDOC_HOME": str(logs)}
        stack = Stack(env, logs, session_factory(engine), f"{base}/v1")
        with uvicorn_api(env, logs / "uvicorn.log") as url:
            stack.url = url
            yield stack
    finally:
        if stack is not None:
            stop(stack.worker)
        stop(inference)
        engine.dispose()


@pytest.fixture(scope="package")
def shots():
    """The folder screenshots go to (printed, kept after the run for a person to look at)."""
    folder = Path(tempfile.mkdtemp(prefix="wholedoc-web-shots-"))
    print(f"\nweb page screenshots: {folder}")
    yield folder
    print(f"\nweb page screenshots: {folder}")


@pytest.fixture(scope="package")
def browser():
    if not Path(CHROMIUM).exists():
        need_service("chromium", "Debian's chromium drives the web page's tests (scripts/setup.sh installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        yield b
        b.close()


@pytest.fixture(scope="package")
def axe_source() -> str:
    if not AXE.exists():
        need_service("axe-core", f"{AXE} missing: scripts/setup.sh installs it with npm")
    return AXE.read_text()
