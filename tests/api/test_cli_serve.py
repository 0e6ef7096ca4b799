"""`wholedoc serve` starts the api, a worker and beat as processes, serves, and stops them all on SIGTERM."""

import os
import signal
import subprocess
import sys

import httpx
import pytest

from tests.helpers.services import free_port, wait_healthy
from tests.pipeline.faultserver import FaultServer

pytestmark = [pytest.mark.services, pytest.mark.slow]


def test_serve_starts_and_stops_cleanly(tmp_path):
    llm = FaultServer()
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("WHOLEDOC_")}
    env |= {"WHOLEDOC_HOME": str(tmp_path), "WHOLEDOC_INFERENCE_URL": llm.base_url}
    proc = subprocess.Popen([sys.executable, "-m", "api.cli", "serve", "--port", str(port)], env=env,
                            stderr=subprocess.PIPE, text=True)
    try:
        wait_healthy(f"http://127.0.0.1:{port}", proc, "wholedoc serve", 90)
        page = httpx.get(f"http://127.0.0.1:{port}/", timeout=10)
        assert page.status_code == 200 and "<title>wholedoc</title>" in page.text
        logs = sorted(p.name for p in (tmp_path / "logs").iterdir())
        assert logs == ["api.log", "beat.log", "worker.log"]  # no inference server: WHOLEDOC_INFERENCE_URL is set
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
        err = proc.stderr.read()
        assert "serving on" in err and "stopping" in err
        assert f"web page: http://127.0.0.1:{port}/" in err  # the page a person opens (docs/web.md)
        try:
            httpx.get(f"http://127.0.0.1:{port}/health", timeout=1)
            raise AssertionError("the api is still answering after serve stopped")
        except httpx.HTTPError:
            pass
        assert "warm shutdown" in (tmp_path / "logs" / "worker.log").read_text().lower()
    finally:
        if proc.poll() is None:
            proc.kill()
        llm.close()
