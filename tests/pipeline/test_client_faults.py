"""Fault handling against the loopback fault server: 429/5xx retries, timeouts, dropped streams, cancellation."""

import random
import threading
import time

import pytest

from pipeline.client import ClientConfig, InferenceClient, backoff_delay, parse_retry_after, parse_usage
from pipeline.errors import EndpointUnavailable, RateLimited, RequestCancelled, StreamInterrupted
from tests.helpers.wait import wait_until
from tests.pipeline.faultserver import FaultServer, Reply

MESSAGES = [{"role": "user", "content": "hi"}]


@pytest.fixture
def server():
    s = FaultServer()
    yield s
    s.close()
    assert s.errors == []


def client(s, **kw) -> InferenceClient:
    kw.setdefault("backoff_base", 0.01)
    return InferenceClient(ClientConfig(s.base_url, "m", **kw), rng=random.Random(0))


def cancel_once_posted(server, cancel: threading.Event) -> None:
    """Set `cancel` as soon as the server has received the chat request (not after a guessed delay)."""
    def go():
        wait_until(lambda: server.paths("POST"), 10, "the chat request at the server")
        cancel.set()

    threading.Thread(target=go, daemon=True).start()


def gaps(server) -> list[float]:
    t = [r.at for r in server.received if r.path == "/v1/chat/completions"]
    return [b - a for a, b in zip(t, t[1:])]


def test_429_retry_after_is_honoured(server):
    server.script.extend([Reply(status=429, headers={"Retry-After": "0.3"}) for _ in range(2)])
    with client(server) as c:
        out = c.chat(MESSAGES, max_tokens=8, request_id="q")
    assert out.content == "Hello world" and out.attempts == 3 and out.request_id == "q.3"
    assert all(g >= 0.3 for g in gaps(server))
    ids = [r.headers["X-Request-Id"] for r in server.received if r.method == "POST"]
    assert ids == ["q", "q.2", "q.3"]


def test_5xx_backs_off_exponentially_then_succeeds(server):
    server.script.extend([Reply(status=503), Reply(status=500), Reply(status=502)])
    with client(server, backoff_base=0.1) as c:
        assert c.chat(MESSAGES, max_tokens=8).attempts == 4
    g = gaps(server)
    # waits of base·2^(k-1) jittered into [½, 1]×: ≥ 0.05, 0.1, 0.2
    assert g[0] >= 0.05 and g[1] >= 0.1 and g[2] >= 0.2


def test_retries_are_bounded(server):
    server.default = Reply(status=503, error="overloaded")
    with client(server, max_retries=2) as c, pytest.raises(EndpointUnavailable, match="3 attempts.*overloaded") as e:
        c.chat(MESSAGES, max_tokens=8)
    assert (e.value.status, e.value.attempts) == (503, 3) and len(server.paths("POST")) == 3


def test_persistent_429_raises_rate_limited_with_the_hint(server):
    server.default = Reply(status=429, headers={"Retry-After": "0"})
    with client(server, max_retries=1) as c, pytest.raises(RateLimited) as e:
        c.chat(MESSAGES, max_tokens=8)
    assert e.value.attempts == 2 and e.value.retry_after == 0


def test_a_long_retry_after_is_raised_at_once_not_slept(server):
    """A quota-style 429 (wait an hour) must pause the job, not block a worker for an hour."""
    server.script.append(Reply(status=429, headers={"Retry-After": "3600"}))
    t0 = time.monotonic()
    with client(server) as c, pytest.raises(RateLimited) as e:
        c.chat(MESSAGES, max_tokens=8)
    # the bound is the behaviour: sleeping the hint would take an hour; 30 s leaves room for a loaded machine
    assert e.value.retry_after == 3600 and time.monotonic() - t0 < 30 and len(server.paths("POST")) == 1


def test_hang_past_first_token_timeout_is_retried_then_fails(server):
    server.default = Reply(hang=300)
    t0 = time.monotonic()
    with client(server, first_token_timeout=0.3, max_retries=1) as c, pytest.raises(EndpointUnavailable,
                                                                                      match="first_token_timeout"):
        c.chat(MESSAGES, max_tokens=8)
    # the bound is the behaviour: two 0.3 s timeouts, not the server's 300 s hang (generous for a loaded machine)
    assert time.monotonic() - t0 < 30 and len(server.paths("POST")) == 2


def test_idle_gap_after_first_token_times_out(server):
    server.script.append(Reply(content=("a", "b"), chunk_delay=2.0))
    with client(server, idle_timeout=0.3, max_retries=0) as c, pytest.raises(EndpointUnavailable, match="idle"):
        c.chat(MESSAGES, max_tokens=8)


def test_dropped_stream_is_retried_when_nothing_was_delivered(server):
    server.script.append(Reply(content=("a", "b", "c"), drop_after=1))
    with client(server) as c:
        out = c.chat(MESSAGES, max_tokens=8, request_id="d")
    assert out.content == "Hello world" and out.attempts == 2
    assert "/v1/requests/d" in server.paths("DELETE")  # the broken attempt is aborted server-side


def test_dropped_stream_after_delivery_is_not_spliced(server):
    server.script.append(Reply(content=("a", "b", "c"), drop_after=2))
    seen = []
    with client(server) as c, pytest.raises(StreamInterrupted) as e:
        c.chat(MESSAGES, max_tokens=8, on_delta=lambda k, t: seen.append(t))
    assert e.value.partial == "ab" == "".join(seen) and len(server.paths("POST")) == 1


def test_stream_ending_without_done_counts_as_dropped(server):
    """Regression: a stream closed cleanly but without finish_reason/[DONE] must not pass as a full answer."""
    server.script.append(Reply(content=("a", "b"), end_after=1))
    server.script.append(Reply(content=("full",)))
    with client(server) as c:
        assert c.chat(MESSAGES, max_tokens=8).content == "full"
    assert len(server.paths("POST")) == 2


@pytest.mark.parametrize("stream", [True, False])
def test_cancel_during_prefill_stops_fast_and_sends_delete(server, stream):
    server.script.append(Reply(hang=300))
    cancel = threading.Event()
    cancel_once_posted(server, cancel)
    t0 = time.monotonic()
    with client(server) as c, pytest.raises(RequestCancelled):
        c.chat(MESSAGES, max_tokens=8, request_id="job-7", cancel=cancel, stream=stream)
    # the bound is the behaviour: the cancel stops the wait, not the server's 300 s hang (generous under load)
    assert time.monotonic() - t0 < 30
    assert server.paths("DELETE") == ["/v1/requests/job-7"] and server.states["job-7"]["state"] == "cancelled"
    assert len(server.paths("POST")) == 1  # never retried


def test_cancel_mid_stream(server):
    server.script.append(Reply(content=tuple("abcdefghij"), chunk_delay=0.1))
    cancel = threading.Event()
    seen = []

    def on_delta(kind, text):
        seen.append(text)
        if len(seen) == 3:
            cancel.set()

    with client(server) as c, pytest.raises(RequestCancelled):
        c.chat(MESSAGES, max_tokens=8, request_id="s", cancel=cancel, on_delta=on_delta)
    assert seen == ["a", "b", "c"] and "/v1/requests/s" in server.paths("DELETE")


def test_cancel_while_waiting_to_retry(server):
    server.default = Reply(status=503)
    cancel = threading.Event()
    cancel_once_posted(server, cancel)
    t0 = time.monotonic()
    with client(server, backoff_base=600, backoff_max=600) as c, pytest.raises(RequestCancelled,
                                                                               match="waiting to retry"):
        c.chat(MESSAGES, max_tokens=8, cancel=cancel)
    # the bound is the behaviour: the cancel cuts the 300-600 s backoff short (generous for a loaded machine)
    assert time.monotonic() - t0 < 30 and len(server.paths("POST")) == 1


def test_connection_refused_is_retried_then_unavailable():
    s = FaultServer()
    url = s.base_url
    s.close()
    c = InferenceClient(ClientConfig(url, "m", backoff_base=0.01, max_retries=2))
    with pytest.raises(EndpointUnavailable) as e:
        c.chat(MESSAGES, max_tokens=8)
    assert e.value.attempts == 3


def test_backoff_and_retry_after_parsing():
    cfg = ClientConfig("http://x/v1", "m", backoff_base=1.0, backoff_max=5.0)
    rng = random.Random(1)
    for k, ceiling in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 5.0), (9, 5.0)]:
        d = backoff_delay(cfg, k, rng)
        assert ceiling / 2 <= d <= ceiling
    assert parse_retry_after("2.5") == 2.5 and parse_retry_after(None) is None and parse_retry_after("soon") is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == 10.0


def test_usage_parsing_edge_cases():
    assert parse_usage(None) is None and parse_usage({}) is None
    u = parse_usage({"prompt_cache_hit_tokens": 3, "prompt_cache_miss_tokens": 4, "completion_tokens": 1})
    assert (u.prompt_tokens, u.cached_tokens) == (7, 3)
    u = parse_usage({"prompt_tokens": 9, "completion_tokens": 2, "prompt_tokens_details": None,
                     "completion_tokens_details": {"reasoning_tokens": 1}})
    assert (u.cached_tokens, u.reasoning_tokens, u.total_tokens) == (None, 1, 11)  # unknown, not zero


def test_progress_comments_cannot_stretch_the_time_to_first_token(server):
    """A server that reports progress forever but never produces a token still hits first_token_timeout."""
    server.script.append(Reply(progress=tuple((i, 6000) for i in range(6000)), chunk_delay=0.05))
    t0 = time.monotonic()
    with client(server, first_token_timeout=0.4, idle_timeout=10, max_retries=0) as c, pytest.raises(
            EndpointUnavailable, match="first_token_timeout"):
        c.chat(MESSAGES, max_tokens=8)
    # the bound is the behaviour: 0.4 s to the first token, not the 300 s of progress comments (generous under load)
    assert time.monotonic() - t0 < 30


def test_a_stalled_prefill_is_caught_by_the_idle_gap(server):
    """After progress comments started, silence longer than idle_timeout is a stall even before the first token."""
    server.script.append(Reply(progress=((1, 100),), hang=0, chunk_delay=3.0))
    with client(server, first_token_timeout=60, idle_timeout=0.3, max_retries=0) as c, pytest.raises(
            EndpointUnavailable, match="idle_timeout"):
        c.chat(MESSAGES, max_tokens=8)
