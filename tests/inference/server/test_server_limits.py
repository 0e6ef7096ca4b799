"""Limits and cancellation on a real server process with a tight config (1 running, 1 waiting, 16-token prefill
chunks, 4096-token window): over-window 400, queue full 429 + Retry-After, prefill progress comments, abort by id
and by disconnect, each freeing the request's cache blocks."""

import json
import threading

import anthropic
import httpx
import openai
import pytest

from pipeline.client.client import REQUESTED_IN_MESSAGE, WINDOW_IN_MESSAGE
from tests.helpers.wait import wait_until

pytestmark = pytest.mark.services


def long_prompt(tag: str, words: int = 3000) -> list[dict]:
    """~`words` tokens (3000: ~190 prefill steps of 16), starting with `tag` so no two tests share a cached prefix."""
    return [{"role": "user", "content": f"{tag}: " + "word " * words}]


class Streamer(threading.Thread):
    """A raw streamed chat request in the background: all SSE lines, an event at the first progress comment."""

    def __init__(self, server, request_id: str, max_tokens: int = 1000, words: int = 3000):
        super().__init__(daemon=True)
        self.server, self.request_id, self.max_tokens = server, request_id, max_tokens
        self.messages = long_prompt(request_id, words)
        self.lines: list[str] = []
        self.status: int | None = None
        self.first_progress = threading.Event()
        self.disconnect = threading.Event()  # set: close the connection at the next line

    def run(self):
        # ignore_eos: a request runs its full length (seconds) unless a test aborts it
        body = {"model": "wholedoc", "messages": self.messages, "max_tokens": self.max_tokens, "stream": True,
                "thinking": {"type": "disabled"}, "ignore_eos": True}
        with httpx.stream("POST", f"{self.server.url}/chat/completions", json=body, timeout=60,
                          headers={"X-Request-Id": self.request_id}) as r:
            self.status = r.status_code
            for line in r.iter_lines():
                self.lines.append(line)
                if line.startswith(": progress"):
                    self.first_progress.set()
                if self.disconnect.is_set():
                    return  # leaving the block closes the connection mid-stream

    def finish_reasons(self) -> list:
        chunks = [json.loads(x[6:]) for x in self.lines if x.startswith("data: {")]
        return [c["choices"][0]["finish_reason"] for c in chunks if c["choices"] and c["choices"][0]["finish_reason"]]


def status(server, request_id: str) -> dict:
    return httpx.get(f"{server.url}/requests/{request_id}").json()


def wait_state(server, request_id: str, states: tuple[str, ...], timeout: float = 20.0) -> dict:
    seen = {}

    def reached():
        seen["s"] = status(server, request_id)
        return seen["s"].get("state") in states

    wait_until(reached, timeout, lambda: f"{request_id} in {states} (last: {seen.get('s')})", 0.02)
    return seen["s"]


def test_over_window_is_400_for_both_clients(tight_server):
    oai = openai.OpenAI(base_url=tight_server.url, api_key="unused", max_retries=0)
    with pytest.raises(openai.BadRequestError) as e:
        oai.chat.completions.create(model="wholedoc", messages=[{"role": "user", "content": "word " * 5000}],
                                    max_tokens=10)
    message = e.value.body["message"]
    assert int(WINDOW_IN_MESSAGE.search(message).group(1)) == 4096
    assert int(REQUESTED_IN_MESSAGE.search(message).group(1)) > 5000
    claude = anthropic.Anthropic(base_url=tight_server.root, api_key="unused", max_retries=0)
    with pytest.raises(anthropic.BadRequestError) as e:
        claude.messages.create(model="wholedoc", max_tokens=1000,
                               messages=[{"role": "user", "content": "word " * 3500}])
    assert "4096" in str(e.value)


def test_progress_comments_are_visible_during_a_long_prefill(tight_server):
    s = Streamer(tight_server, "long-prefill", max_tokens=4, words=1000)
    s.start()
    s.join(120)
    assert s.status == 200
    first_data = next(i for i, x in enumerate(s.lines) if x.startswith("data: {") and '"content": ""' not in x)
    progress = [json.loads(x.split("progress ", 1)[1]) for x in s.lines[:first_data] if x.startswith(": progress ")]
    assert len(progress) >= 10, f"only {len(progress)} progress comments before the first token"
    done = [p["prefill_tokens_done"] for p in progress]
    assert done == sorted(done) and done[-1] > done[0]
    assert {p["prefill_tokens_total"] for p in progress} == {status(tight_server, "long-prefill")[
        "prefill_tokens_total"]}
    assert [x for x in s.lines if x][-1] == "data: [DONE]"


def test_queue_full_is_429_with_retry_after_then_abort_by_id_frees_blocks(tight_server):
    running = Streamer(tight_server, "q-running")
    running.start()
    assert running.first_progress.wait(30)
    wait_state(tight_server, "q-running", ("prefilling",))
    waiting = Streamer(tight_server, "q-waiting")
    waiting.start()
    wait_state(tight_server, "q-waiting", ("waiting",))
    oai = openai.OpenAI(base_url=tight_server.url, api_key="unused", max_retries=0)
    with pytest.raises(openai.RateLimitError) as e:
        oai.chat.completions.create(model="wholedoc", messages=[{"role": "user", "content": "hi"}], max_tokens=2)
    assert int(e.value.response.headers["retry-after"]) >= 1
    assert "queue" in e.value.body["message"]
    # abort both by id, one prefilling and one waiting: both streams end with finish_reason "abort"
    before = status(tight_server, "q-running")
    for rid in ("q-waiting", "q-running"):
        r = httpx.delete(f"{tight_server.url}/requests/{rid}")
        assert r.status_code == 200 and r.json()["state"] == "aborted"
    running.join(30)
    waiting.join(30)
    assert running.finish_reasons() == ["abort"] and waiting.finish_reasons() == ["abort"]
    after = status(tight_server, "q-running")
    assert after["state"] == "aborted" and 0 < after["prefill_tokens_done"] < after["prefill_tokens_total"]
    assert after["prefill_tokens_done"] >= before["prefill_tokens_done"]
    tight_server.wait_idle()


def test_a_dropped_connection_aborts_the_request_and_frees_its_blocks(tight_server):
    s = Streamer(tight_server, "drop-me")
    s.start()
    assert s.first_progress.wait(30)
    wait_state(tight_server, "drop-me", ("prefilling",))
    tight_server.wait_metrics(lambda m: m["cache_blocks_used"] > 0, "cache blocks held by the prefill", 10)
    s.disconnect.set()
    s.join(30)
    final = wait_state(tight_server, "drop-me", ("aborted",))
    assert final["prefill_tokens_done"] < final["prefill_tokens_total"]
    tight_server.wait_idle()


def test_status_of_a_waiting_request_and_its_cancellation_before_the_first_token(tight_server):
    """A caller can follow a request by its id before any token, then cancel it."""
    s = Streamer(tight_server, "follow-me")
    s.start()
    first = wait_state(tight_server, "follow-me", ("waiting", "prefilling"))
    assert first["id"] == "follow-me" and first["tokens_generated"] == 0 and first["prefill_tokens_total"] > 2900
    assert httpx.delete(f"{tight_server.url}/requests/follow-me").json()["state"] == "aborted"
    s.join(30)
    assert s.finish_reasons() == ["abort"]
    assert httpx.delete(f"{tight_server.url}/requests/never-was").status_code == 404
    tight_server.wait_idle()


def test_a_non_streaming_client_that_hangs_up_aborts_its_request(tight_server):
    body = {"model": "wholedoc", "messages": long_prompt("hang-up"), "max_tokens": 1000, "ignore_eos": True}
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{tight_server.url}/chat/completions", json=body, timeout=httpx.Timeout(0.5, connect=5.0),
                   headers={"X-Request-Id": "hang-up"})
    final = wait_state(tight_server, "hang-up", ("aborted",))
    assert final["prefill_tokens_done"] < final["prefill_tokens_total"]
    tight_server.wait_idle()


def test_a_second_request_with_a_running_id_is_409(tight_server):
    s = Streamer(tight_server, "dup-id")
    s.start()
    wait_state(tight_server, "dup-id", ("waiting", "prefilling"))
    r = httpx.post(f"{tight_server.url}/chat/completions", headers={"X-Request-Id": "dup-id"},
                   json={"model": "wholedoc", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2})
    assert r.status_code == 409 and "dup-id" in r.json()["error"]["message"]
    httpx.delete(f"{tight_server.url}/requests/dup-id")
    s.join(30)
    tight_server.wait_idle()
