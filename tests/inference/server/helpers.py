"""Helpers of the server tests (import them; fixtures live in conftest.py): a real server process, prompts."""

import os
import subprocess
import sys
from pathlib import Path

import httpx

from tests.helpers.services import free_port, wait_healthy
from tests.helpers.wait import wait_until

ROOT = Path(__file__).resolve().parents[3]
# 4 running requests, 128-token prefill chunks, a 0.25 GiB cache
ROOMY = ("--max-num-seqs", "4", "--max-num-batched-tokens", "128", "--max-waiting", "16", "--cache-gib", "0.25",
         "--progress-interval", "0")


def document_question(doc: str, question: str) -> list[dict]:
    """The pipeline's prompt shape: a system line, the document, then the question (same prefix for every one)."""
    return [{"role": "system", "content": "Answer from the document."},
            {"role": "user", "content": f"<document>\n{doc}</document>\n\nQuestion: {question}"}]


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
        try:
            wait_healthy(self.root, self.proc, "the server", 120)
        except (RuntimeError, AssertionError) as e:
            self.close()
            raise RuntimeError(f"{e}: {log.read_text()[-3000:]}") from e

    def metrics(self) -> dict[str, float]:
        """One scrape of /metrics: {name without the wholedoc_inference_ prefix: value} for unlabelled samples."""
        prefix = "wholedoc_inference_"
        out = {}
        for line in httpx.get(f"{self.root}/metrics").text.splitlines():
            if line.startswith(prefix) and "{" not in line:
                name, value = line.split()[:2]
                out[name.removeprefix(prefix)] = float(value)
        return out

    def metric(self, name: str) -> float:
        return self.metrics()[name]

    def wait_metrics(self, until, what: str, timeout: float = 20.0) -> dict[str, float]:
        """Scrape until `until(metrics)` holds and return those metrics. The engine gauges and counters come from a
        stats snapshot the engine thread refreshes about twice a second, so they lag the traffic by up to ~0.75 s."""
        seen = {}

        def check():
            seen["m"] = self.metrics()
            return until(seen["m"])

        wait_until(check, timeout, lambda: f"{what} (last metrics: {seen.get('m')})", 0.1)
        return seen["m"]

    def wait_idle(self, timeout: float = 20.0) -> dict[str, float]:
        """Until no request runs or waits and no cache block is held by one, in one snapshot."""
        return self.wait_metrics(lambda m: (m.get("running_requests"), m.get("queue_depth"), m.get(
            "cache_blocks_used")) == (0, 0, 0), "idle: nothing running, waiting or holding cache blocks", timeout)

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
