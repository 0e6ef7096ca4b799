"""The inference client against a real loopback HTTP server: streaming, usage, thinking, wholedoc's extras."""

import threading

import openai
import pytest

from pipeline.client import ClientConfig, InferenceClient
from pipeline.errors import ContextWindowExceeded, RequestRejected
from tests.pipeline.faultserver import FaultServer, Reply

MESSAGES = [{"role": "system", "content": "S"}, {"role": "user", "content": "<document>\nx\n</document>\n\nWhy?"}]
DEEPSEEK_USAGE = {"prompt_tokens": 500, "completion_tokens": 7, "prompt_cache_hit_tokens": 384,
                  "prompt_cache_miss_tokens": 116}


@pytest.fixture
def server():
    s = FaultServer()
    yield s
    s.close()
    assert s.errors == []


@pytest.fixture
def generic():
    s = FaultServer(wholedoc=False)
    yield s
    s.close()
    assert s.errors == []


def client(s: FaultServer, **kw) -> InferenceClient:
    return InferenceClient(ClientConfig(s.base_url, "deepseek-v4-flash", api_key="sk-test", backoff_base=0.01, **kw))


def test_streaming_completion_with_openai_usage(server):
    with client(server) as c:
        out = c.chat(MESSAGES, max_tokens=64, thinking=False, request_id="job-1")
    assert out.content == "Hello world" and out.reasoning_content is None
    assert (out.finish_reason, out.request_id, out.attempts) == ("stop", "job-1", 1)
    assert (out.usage.prompt_tokens, out.usage.completion_tokens, out.usage.cached_tokens) == (100, 2, 64)
    assert out.usage.computed_prompt_tokens == 36
    req = server.received[0]
    assert req.path == "/v1/chat/completions"
    assert req.headers["X-Request-Id"] == "job-1" and req.headers["Authorization"] == "Bearer sk-test"
    assert req.body["thinking"] == {"type": "disabled"} and req.body["stream"] is True
    assert req.body["stream_options"] == {"include_usage": True} and req.body["messages"] == MESSAGES


def test_thinking_budget_is_sent_only_with_thinking_on(server):
    with client(server) as c:
        c.chat(MESSAGES, max_tokens=64, thinking=True, thinking_budget=40)
        c.chat(MESSAGES, max_tokens=64, thinking=False, thinking_budget=40)
    assert [r.body["thinking"] for r in server.received] == [{"type": "enabled", "budget_tokens": 40},
                                                             {"type": "disabled"}]


@pytest.mark.parametrize("stream", [True, False])
def test_deepseek_usage_spelling(server, stream):
    server.script.append(Reply(usage=DEEPSEEK_USAGE))
    with client(server) as c:
        out = c.chat(MESSAGES, max_tokens=8, stream=stream)
    assert (out.usage.prompt_tokens, out.usage.cached_tokens, out.usage.completion_tokens) == (500, 384, 7)


@pytest.mark.parametrize("field", ["reasoning_content", "reasoning"])
@pytest.mark.parametrize("stream", [True, False])
def test_thinking_deltas_in_both_spellings(server, field, stream):
    server.script.append(Reply(reasoning=("Let me ", "think."), reasoning_field=field, content=("42",)))
    seen = []
    with client(server) as c:
        out = c.chat(MESSAGES, max_tokens=8, thinking=True, stream=stream, on_delta=lambda k, t: seen.append((k, t)))
    assert (out.reasoning_content, out.content) == ("Let me think.", "42")
    assert server.received[0].body["thinking"] == {"type": "enabled"}
    if stream:
        assert seen == [("reasoning", "Let me "), ("reasoning", "think."), ("content", "42")]


def test_progress_comments_are_reported(server):
    server.script.append(Reply(progress=((0, 300), (128, 300), (300, 300)), content=("a", "b", "c")))
    reports = []
    with client(server) as c:
        c.chat(MESSAGES, max_tokens=8, on_progress=reports.append)
    prefill = [(p.prefill_tokens_done, p.prefill_tokens_total) for p in reports if p.phase == "prefill"]
    assert prefill == [(0, 300), (128, 300), (300, 300)]
    assert [p.tokens_generated for p in reports if p.phase == "decode"][-1] == 3


def test_wholedoc_extras(server):
    with client(server) as c:
        assert c.max_model_len() == 1_048_576
        probe = c.probe_cache(MESSAGES)
        assert (probe.prompt_tokens, probe.cached_tokens, probe.tokens_to_compute) == (1000, 900, 100)
        assert c.tokenize(MESSAGES) == 1234
        c.chat(MESSAGES, max_tokens=8, request_id="r-9")
        status = c.request_status("r-9")
        assert (status.id, status.state, status.tokens_generated) == ("r-9", "finished", 2)
    bodies = {r.path: r.body for r in server.received if r.method == "POST"}
    assert bodies["/v1/cache/probe"] == {"model": "deepseek-v4-flash", "messages": MESSAGES}
    assert bodies["/v1/tokenize"] == {"model": "deepseek-v4-flash", "messages": MESSAGES}


def test_any_openai_endpoint_without_the_extras(generic):
    with client(generic) as c:
        assert c.max_model_len() is None
        assert c.probe_cache(MESSAGES) is None and c.tokenize(prompt="x") is None
        assert c.request_status("nope") is None and c.cancel_request("nope") is False
        assert c.chat(MESSAGES, max_tokens=8).content == "Hello world"


def test_context_window_error_is_typed_and_not_retried(server):
    server.script.append(Reply(status=400, error="This model's maximum context length is 1048576 tokens. "
                                                 "However, you requested 1100000 tokens."))
    with client(server) as c, pytest.raises(ContextWindowExceeded, match="maximum context length") as e:
        c.chat(MESSAGES, max_tokens=8)
    assert (e.value.window_tokens, e.value.requested_tokens) == (1048576, 1100000)
    assert len(server.paths("POST")) == 1


def test_context_window_error_by_openai_code(server):
    server.script.append(Reply(status=400, error="Prompt too large for this deployment.",
                               error_code="context_length_exceeded"))
    server.script.append(Reply(status=400, error="messages[0].role is invalid"))
    with client(server) as c:
        with pytest.raises(ContextWindowExceeded) as e:
            c.chat(MESSAGES, max_tokens=8)
        assert e.value.window_tokens is None
        with pytest.raises(RequestRejected, match="role is invalid"):  # other 400s are not window errors
            c.chat(MESSAGES, max_tokens=8)


def test_bad_key_is_rejected_without_retry(server):
    server.script.append(Reply(status=401, error="invalid api key"))
    with client(server) as c, pytest.raises(RequestRejected, match="401.*invalid api key") as e:
        c.chat(MESSAGES, max_tokens=8)
    assert e.value.status == 401 and len(server.paths("POST")) == 1


def test_concurrent_calls_share_one_client(server):
    results = []
    with client(server) as c:
        threads = [threading.Thread(target=lambda: results.append(c.chat(MESSAGES, max_tokens=8).content))
                   for _ in range(4)]
        [t.start() for t in threads]
        [t.join() for t in threads]
    assert results == ["Hello world"] * 4


def test_non_streaming_progress_polls_request_status(server):
    server.script.append(Reply(hang=0.5))
    reports = []
    with InferenceClient(ClientConfig(server.base_url, "m", status_poll_interval=0.05)) as c:
        out = c.chat(MESSAGES, max_tokens=8, stream=False, request_id="nb", on_progress=reports.append)
    assert out.content == "Hello world"
    assert reports and all((p.phase, p.prefill_tokens_total) == ("prefill", 100) for p in reports)
    assert "/v1/requests/nb" in server.paths("GET")


def test_non_streaming_progress_gives_up_on_servers_without_status(generic):
    generic.script.append(Reply(hang=0.3))
    reports = []
    with InferenceClient(ClientConfig(generic.base_url, "m", status_poll_interval=0.05)) as c:
        c.chat(MESSAGES, max_tokens=8, stream=False, on_progress=reports.append)
    assert reports == [] and len(generic.paths("GET")) == 1  # one 404, then no more polling


def test_the_fault_server_speaks_openai_as_the_official_sdk_reads_it(server):
    """Guards the fake: if the fault server drifted from the real protocol, the client tests would prove nothing."""
    server.script.append(Reply(reasoning=("hm",), content=("Hi", "!"), usage=DEEPSEEK_USAGE))
    sdk = openai.OpenAI(base_url=server.base_url, api_key="sk-test", max_retries=0)
    chunks = list(sdk.chat.completions.create(model="deepseek-v4-flash", messages=MESSAGES, stream=True,
                                              stream_options={"include_usage": True}))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Hi!"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].usage.prompt_tokens == 500 and chunks[-1].usage.model_extra["prompt_cache_hit_tokens"] == 384
    server.script.append(Reply(status=429, headers={"Retry-After": "7"}))
    with pytest.raises(openai.RateLimitError) as e:
        sdk.chat.completions.create(model="deepseek-v4-flash", messages=MESSAGES)
    assert e.value.response.headers["retry-after"] == "7"


def test_deepseek_flavor_sends_only_what_deepseeks_api_accepts(server):
    """DeepSeek's API (flavor "deepseek", chosen automatically for *.deepseek.com): thinking is on by default there,
    so it is always sent as its documented toggle; no `cache_salt` and no `budget_tokens`, which it does not take;
    its cache hits come back as `prompt_cache_hit_tokens`."""
    server.script += [Reply(usage=DEEPSEEK_USAGE), Reply(usage=DEEPSEEK_USAGE)]
    with client(server, flavor="deepseek") as c:
        off = c.chat(MESSAGES, max_tokens=64, thinking=False, cache_salt="tenant-a")
        c.chat(MESSAGES, max_tokens=64, thinking=True, thinking_budget=40, cache_salt="tenant-a")
    assert [r.body["thinking"] for r in server.received] == [{"type": "disabled"}, {"type": "enabled"}]
    assert all("cache_salt" not in r.body for r in server.received)
    assert (off.usage.prompt_tokens, off.usage.cached_tokens, off.usage.computed_prompt_tokens) == (500, 384, 116)


def test_flavor_is_deepseek_for_deepseeks_host_only():
    assert ClientConfig("https://api.deepseek.com/v1", "deepseek-v4-flash").flavor == "deepseek"
    assert ClientConfig("https://api.deepseek.com.evil.test/v1", "m").flavor == "extended"
    assert ClientConfig("http://127.0.0.1:8000/v1", "wholedoc").flavor == "extended"
    with pytest.raises(ValueError, match="flavor must be"):
        ClientConfig("http://127.0.0.1:8000/v1", "wholedoc", flavor="vllm")


def test_extended_flavor_keeps_the_salt(server):
    with client(server) as c:
        c.chat(MESSAGES, max_tokens=8, cache_salt="tenant-a")
    assert server.received[0].body["cache_salt"] == "tenant-a"
