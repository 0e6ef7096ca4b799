"""Fixtures every test package can use: scratch PostgreSQL databases, one private Redis, moto's S3, the `tiny`
checkpoint. Plain helpers (free ports, the CI rule that a missing service is a failure, not a skip, and
wait_until) are modules in tests/helpers/: import those, never a conftest.

Imports here stay light (no torch, no sqlalchemy at import time): tests/pipeline also runs in the torch-free
environment. Each package's own fixtures are in its conftest.py.
"""

import os
import subprocess
import sys
from contextlib import ExitStack
from pathlib import Path

import pytest

from tests.helpers.services import free_port, need_service, reap_orphans, redis_server
from tests.helpers.wait import wait_until


def pytest_addoption(parser):
    parser.addoption("--fault-report", action="store_true", default=False,
                     help="tests/faults: write the scenarios' results table to docs/fault-results.md")


@pytest.fixture(scope="session")
def scratch_pg():
    """scratch_pg() → the URL of a new PostgreSQL database on 127.0.0.1:5432 (user postgres), migrated to head and
    dropped when the session ends. The one place tests make databases; skips (fails in CI) without PostgreSQL."""
    from pipeline.records.scratch import postgres_reachable, scratch_postgres

    if not postgres_reachable():
        need_service("postgresql", "127.0.0.1:5432 (user postgres) holds the records in production and CI")
    with ExitStack() as databases:
        yield lambda: databases.enter_context(scratch_postgres())


@pytest.fixture(scope="session")
def pg_url(scratch_pg):
    """The session's database, shared by the api and pipeline tests (each test makes its own tenants and jobs).
    tests/workers overrides it with a database of its own: its reconciler sweeps every row. So does a module whose
    workers run beat (`-B`): it takes `scratch_pg()` instead, or its reconciler re-sends the queued jobs every other
    test left here. A session fixture that needs the database belongs in a package's conftest.py, never here."""
    return scratch_pg()


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory):
    """`redis://…/0` on a private redis-server (never the shared 6379), started once per session. The packages keep
    apart by database number (tests.helpers.services.redis_db): 0 the API tests, 1 and 2 the end-to-end
    stacks, 3 the worker tests."""
    with redis_server(tmp_path_factory.mktemp("redis")) as url:
        yield url


@pytest.fixture(scope="session")
def moto_endpoint():
    """`host:port` of a moto S3 server process on loopback, started once per session."""
    import httpx

    exe = Path(sys.executable).with_name("moto_server")
    if not exe.exists():
        need_service("moto_server", f"{exe} not found; install the dev extra (moto[server])")
    port = free_port()
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
    proc = subprocess.Popen([str(exe), "-H", "127.0.0.1", "-p", str(port)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def answers() -> bool:
        try:
            httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
            return True
        except httpx.HTTPError:
            if proc.poll() is not None:
                need_service("moto_server", f"exited with {proc.returncode} before answering on port {port}")
            return False

    try:
        try:
            wait_until(answers, 30, "moto_server answering", 0.1)
        except AssertionError:
            need_service("moto_server", f"did not answer on port {port} in 30 s")
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """The `tiny` preset (V4 tokenizer and vocabulary, random weights, seed 0) written once per session."""
    from inference.checkpoint.dev import write_checkpoint
    from inference.checkpoint.presets import preset_config

    return Path(write_checkpoint(tmp_path_factory.mktemp("tiny"), preset_config("tiny"), seed=0))


@pytest.fixture(autouse=True)
def _reap_worker_orphans():
    """After each test: what is left of a Celery worker it killed (a `-B` worker's beat child) is killed too."""
    yield
    reap_orphans()
