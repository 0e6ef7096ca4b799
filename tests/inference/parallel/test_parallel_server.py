"""The real server process on two gloo ranks (docs/parallel.md): `--tp 2` and `--ep 2` answer the official openai
client with what the single-process server answers (greedy, concurrent requests on one document); killing or
stopping a rank turns /health 503 and the process exits non-zero within 60 s."""

import concurrent.futures
import os
import re
import signal
import time

import httpx
import openai
import pytest

from tests.inference.server.helpers import ROOMY, Server, document_question

pytestmark = pytest.mark.slow
DOC = " ".join(f"Line {i}: the harbour master logs ship {i * 7 % 13} at berth {i % 5}." for i in range(40))
QUESTIONS = ["Which ship is at berth 3?", "How many lines are there?", "What does the harbour master log?"]


def _answers(server: Server) -> list[str]:
    client = openai.OpenAI(base_url=server.url, api_key="unused", max_retries=0, timeout=120)

    def ask(q: str) -> str:
        r = client.chat.completions.create(model="wholedoc", messages=document_question(DOC, q), max_tokens=8,
                                           temperature=0)
        assert r.choices[0].finish_reason in ("length", "stop") and r.usage.completion_tokens > 0
        return r.choices[0].message.content

    first = ask(QUESTIONS[0])  # the document prefilled once
    again = ask(QUESTIONS[0])  # the same prompt again, alone: a prefix hit whatever the timing of the three below
    with concurrent.futures.ThreadPoolExecutor(3) as pool:  # three questions at once on the cached prefix
        return [first, again, *pool.map(ask, QUESTIONS)]


@pytest.fixture(scope="module")
def single_answers(tiny_checkpoint, tmp_path_factory):
    s = Server(tiny_checkpoint, *ROOMY, log=tmp_path_factory.mktemp("log") / "single.log")
    try:
        return _answers(s)
    finally:
        s.close()


@pytest.mark.parametrize("layout", [("--tp", "2"), ("--ep", "2")], ids=["tp2", "ep2"])
def test_parallel_server_answers_the_openai_client_as_one_process(tiny_checkpoint, tmp_path, single_answers, layout):
    s = Server(tiny_checkpoint, *ROOMY, *layout, log=tmp_path / "server.log")
    try:
        assert _answers(s) == single_answers
        # the engine's counters come from a snapshot refreshed about twice a second: wait for it
        s.wait_metrics(lambda m: m["engine_healthy"] == 1.0 and m["prefix_cache_hit_tokens_total"] > 0,
                       "a healthy engine that served prefix hits")
    finally:
        s.close()
    assert s.proc.returncode == -signal.SIGTERM  # as the single-process server: uvicorn obeys the signal
    pid = int(re.search(r"rank 1 pid (\d+)", (tmp_path / "server.log").read_text()).group(1))
    assert not os.path.exists(f"/proc/{pid}")  # the worker was told to stop first


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGSTOP], ids=["killed", "hung"])
def test_a_failed_rank_turns_health_503_and_the_server_exits(tiny_checkpoint, tmp_path, sig):
    log = tmp_path / "server.log"
    s = Server(tiny_checkpoint, *ROOMY, "--tp", "2", "--collective-timeout", "4", log=log)
    pid = int(re.search(r"rank 1 pid (\d+)", log.read_text()).group(1))
    try:
        client = openai.OpenAI(base_url=s.url, api_key="unused", max_retries=0, timeout=60)
        r = client.chat.completions.create(model="wholedoc", messages=[{"role": "user", "content": "Hi"}],
                                           max_tokens=2)
        assert r.usage.completion_tokens > 0  # both ranks served a request before one fails
        t0 = time.monotonic()
        os.kill(pid, sig)
        statuses, reasons = set(), set()
        while s.proc.poll() is None and time.monotonic() - t0 < 60:
            try:
                r = httpx.get(f"{s.root}/health", timeout=2)
            except httpx.HTTPError:
                pass
            else:
                statuses.add(r.status_code)
                if r.status_code == 503:
                    reasons.add(r.text)
            time.sleep(0.2)
        assert s.proc.poll() is not None, "the server still runs 60 s after its rank 1 failed"
        assert s.proc.returncode not in (0, None) and 503 in statuses, (s.proc.returncode, statuses)
        assert any("rank" in why for why in reasons), reasons  # /health says which rank and why
        assert time.monotonic() - t0 < 60
        assert "rank" in log.read_text() and "failed" in log.read_text()
    finally:
        if sig == signal.SIGSTOP and os.path.exists(f"/proc/{pid}"):
            os.kill(pid, signal.SIGKILL)
        s.close()


def test_generate_on_two_ranks_prints_what_one_process_prints(tiny_checkpoint):
    import json
    import subprocess
    import sys

    from tests.inference.server.helpers import ROOT

    def run(*extra: str) -> dict:
        out = subprocess.run([sys.executable, "-m", "inference.generate", "--checkpoint", str(tiny_checkpoint),
                              "--prompt", "The harbour master", "--max-new-tokens", "6", "--greedy", "--ignore-eos",
                              *extra], cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stderr[-2000:]
        return json.loads(out.stdout)

    one = run()
    assert run("--tp", "2", "--ep", "2") == one and len(one["new_ids"]) == 6


def test_torchrun_across_two_nodes_serves_the_openai_client(tiny_checkpoint, tmp_path, single_answers):
    """Two torchrun agents on loopback, one rank each, as two nodes would be started (static rendezvous)."""
    import subprocess
    import sys

    from tests.helpers.services import free_port, wait_healthy
    from tests.inference.server.helpers import ROOT

    port, master = free_port(), free_port()
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc-per-node", "1",
                "--master-addr", "127.0.0.1", "--master-port", str(master)]
    serve = ["-m", "inference.serve", "--checkpoint", str(tiny_checkpoint), "--port", str(port), "--log-level",
             "warning", "--tp", "2", "--ep", "2", *ROOMY]
    logs = [open(tmp_path / f"node{n}.log", "w") for n in (0, 1)]
    nodes = [subprocess.Popen([*torchrun, "--node-rank", str(n), *serve], cwd=ROOT, stdout=logs[n],
                              stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"}) for n in (0, 1)]
    try:
        root = f"http://127.0.0.1:{port}"
        wait_healthy(root, nodes[0], "rank 0 under torchrun", 180)

        class Node:
            url = f"{root}/v1"

        assert _answers(Node) == single_answers
    finally:
        nodes[0].terminate()  # the agent forwards SIGTERM to rank 0, which tells rank 1 to stop
        for n in nodes:
            try:
                n.wait(60)
            except subprocess.TimeoutExpired:
                n.kill()
    assert nodes[1].returncode == 0, (tmp_path / "node1.log").read_text()[-3000:]


@pytest.mark.parametrize("flags,reason", [(("--tp", "3", "--ep", "2"), "must each divide the world size 3"),
                                          (("--ep", "3"), "--ep 3 must divide the checkpoint's 8 routed experts")],
                         ids=["sizes", "experts"])
def test_impossible_layouts_exit_2_with_the_reason(tiny_checkpoint, flags, reason):
    import subprocess
    import sys

    from tests.inference.server.helpers import ROOT

    out = subprocess.run([sys.executable, "-m", "inference.serve", "--checkpoint", str(tiny_checkpoint), "--port",
                          "9", *flags], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "cannot serve" in out.stderr and reason in out.stderr, out.stderr[-2000:]
    assert "rank 1 pid" not in out.stderr  # refused before any rank started
