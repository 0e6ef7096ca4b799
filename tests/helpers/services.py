"""Services for the tests: the CI rule for a missing one, free ports, and real processes (a private redis-server,
uvicorn running the API, a Celery worker)."""

import os
import shutil
import signal
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from api.loopback import free_port
from tests.helpers.wait import wait_until

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
IN_CI = os.environ.get("CI") == "true"


def need_service(name: str, why: str) -> None:
    """Skip locally when a service is missing; in CI (CI=true) fail instead."""
    if IN_CI:
        pytest.fail(f"{name} is required in CI: {why}")
    pytest.skip(f"{name} unavailable: {why}")


def _wait(check, proc: subprocess.Popen, what: str, timeout: float = 30) -> None:
    """Until `check()` holds; RuntimeError as soon as `proc` exits."""
    def ready() -> bool:
        if check():
            return True
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
        return False

    wait_until(ready, timeout, f"{what} ready")


def wait_healthy(base: str, proc: subprocess.Popen, what: str, timeout: float = 30) -> None:
    """Until GET {base}/health answers 200; RuntimeError if proc exits first, AssertionError when the time runs out."""
    def up():
        try:
            return httpx.get(f"{base}/health", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    _wait(up, proc, what, timeout)


def stop(proc: subprocess.Popen, sig=signal.SIGTERM, timeout: float = 15) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    reap_orphans()


_WORKERS: list[subprocess.Popen] = []  # started by start_worker, each the leader of its own process group


def reap_orphans() -> None:
    """Kill what is left of workers whose main process is gone: a `-B` worker's beat runs in a child process that
    outlives a kill -9 of its parent and would go on sending ticks into later tests' broker and database.
    tests/conftest.py calls this after every test."""
    for proc in list(_WORKERS):
        if proc.poll() is not None:
            _WORKERS.remove(proc)
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # the group outlives its leader while a member lives
            except (ProcessLookupError, PermissionError):
                pass


@contextmanager
def redis_server(tmp: Path):
    """A private redis-server on a free port (never the shared 6379); yields its URL."""
    exe = shutil.which("redis-server")
    if exe is None:
        need_service("redis-server", "the Celery broker in production and CI")
    port = free_port()
    proc = subprocess.Popen([exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                             "--dir", str(tmp), "--maxmemory-policy", "noeviction"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    import redis

    client = redis.Redis(host="127.0.0.1", port=port)

    def up():
        try:
            return client.ping()
        except redis.ConnectionError:
            return False

    try:
        _wait(up, proc, "redis-server", 10)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        stop(proc)


def redis_db(url: str, number: int) -> str:
    """The same Redis server as `url`, database `number`."""
    return f"{url.rsplit('/', 1)[0]}/{number}"


@contextmanager
def uvicorn_api(env: dict, log: Path):
    """`uvicorn api.main:create_app --factory` on a free port; yields the base URL."""
    port = free_port()
    with log.open("ab") as out:
        proc = subprocess.Popen([str(BIN / "uvicorn"), "api.main:create_app", "--factory", "--host", "127.0.0.1",
                                 "--port", str(port), "--log-level", "warning"],
                                cwd=ROOT, env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(base, proc, f"uvicorn (log: {log})")
        yield base
    finally:
        stop(proc)


def start_worker(env: dict, log: Path, queues: str = "ingest,llm,maintenance", name: str = "w",
                 extra: tuple[str, ...] = ()) -> subprocess.Popen:
    """A real Celery worker process (solo pool, fast start); returns once it is ready to consume."""
    with log.open("ab") as out:
        proc = subprocess.Popen([str(BIN / "celery"), "-A", "workers.app", "worker", "--pool=solo", "--without-gossip",
                                 "--without-mingle", "--without-heartbeat", "-Q", queues, "-n", f"{name}@%h",
                                 "--loglevel=INFO", *extra],
                                cwd=ROOT, env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    _WORKERS.append(proc)
    _wait(lambda: "ready." in log.read_text(errors="replace"), proc, f"celery worker (log: {log})", 60)
    return proc
