"""A tiny random-weight checkpoint (once per session) and real `python -m inference.serve` processes on free ports."""

import os
import subprocess
import sys
import time
from pathlib import Path

import anthropic
import httpx
import openai
import pytest

from inference.checkpoint.dev import write_checkpoint
from inference.checkpoint.presets import preset_config
from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    return Path(write_checkpoint(tmp_path_factory.mktemp("tiny"), preset_config("tiny"), seed=0))


class Server:
    """One server process; `url` is the /v1 base URL the OpenAI SDK wants, `root` the bare origin."""

    def __init__(self, checkpoint: Path, *args: str, log: Path):
        self.port = free_port()
        self.root = f"http://127.0.0.1:{self.port}"
        self.url = f"{self.root}/v1"
        self.log = log
        cmd = [sys.executable, "-m", "inference.serve", "--checkpoint", str(checkpoint), "--port", str(self.port),
               "--log-level", "warning", *args]
        self.proc = subprocess.Popen(cmd, cwd=ROOT, stdout=open(log, "w"), stderr=subprocess.STDOUT,
                                     env={**os.environ, "PYTHONUNBUFFERED": "1"})
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited ({self.proc.returncode}): {log.read_text()[-3000:]}")
            try:
                if httpx.get(f"{self.root}/health", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        self.close()
        raise RuntimeError(f"the server did not become healthy in 120 s: {log.read_text()[-3000:]}")

    def metric(self, name: str) -> float:
        for line in httpx.get(f"{self.root}/metrics").text.splitlines():
            if line.startswith(f"wholedoc_inference_{name} "):
                return float(line.split()[-1])
        raise KeyError(name)

    def wait_idle(self, timeout: float = 20.0) -> None:
        """Until no request runs or waits and no cache block is held by one (the stats refresh twice a second)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if (self.metric("running_requests"), self.metric("queue_depth"), self.metric("cache_blocks_used")) == (
                    0, 0, 0):
                return
            time.sleep(0.1)
        raise AssertionError(f"not idle after {timeout} s: running {self.metric('running_requests')}, waiting "
                             f"{self.metric('queue_depth')}, blocks used {self.metric('cache_blocks_used')}")

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture(scope="module")
def server(tiny_checkpoint, tmp_path_factory):
    """Roomy: 4 running requests, 128-token prefill chunks, a 0.25 GiB cache."""
    s = Server(tiny_checkpoint, "--max-num-seqs", "4", "--max-num-batched-tokens", "128", "--max-waiting", "16",
               "--cache-gib", "0.25", "--progress-interval", "0", log=tmp_path_factory.mktemp("log") / "server.log")
    yield s
    s.close()


@pytest.fixture(scope="module")
def tight_server(tiny_checkpoint, tmp_path_factory):
    """Tight: one running request, one waiting, 16-token prefill chunks (long prefills), a 4096-token window."""
    s = Server(tiny_checkpoint, "--max-num-seqs", "1", "--max-num-batched-tokens", "16", "--max-waiting", "1",
               "--max-model-len", "4096", "--cache-gib", "0.25", "--progress-interval", "0",
               log=tmp_path_factory.mktemp("log") / "tight.log")
    yield s
    s.close()


@pytest.fixture(scope="module")
def oai(server):
    """The unmodified official OpenAI client on the module's server."""
    return openai.OpenAI(base_url=server.url, api_key="unused", max_retries=0, timeout=60)


@pytest.fixture(scope="module")
def claude(server):
    """The unmodified official Anthropic client on the module's server."""
    return anthropic.Anthropic(base_url=server.root, api_key="unused", max_retries=0, timeout=60)
