"""HTTP shapes of the server on an in-test engine-shaped object (scripted text): SSE framing, usage spellings,
reasoning routing, Anthropic events, error JSON. The behaviour on the real engine is in test_server_engine.py."""

import json

import pytest
from fastapi.testclient import TestClient

from inference.server import ServerConfig, create_app
from pipeline.client.client import REQUESTED_IN_MESSAGE, WINDOW_IN_MESSAGE
from tests.inference.server.scripted_engine import TOKENIZER, ScriptedEngine


def client_for(engine, **cfg):
    return TestClient(create_app(engine, ServerConfig(progress_interval_s=0, **cfg)))


MSGS = [{"role": "user", "content": "word " * 300}]


def sse_lines(resp):
    return [line for line in resp.iter_lines() if line]


def test_openai_non_streaming_thinking_on_splits_reasoning_and_reports_usage():
    engine = ScriptedEngine(["Let me", " think</think>", "The answer", "<｜end▁of▁sentence｜>"], cached=128)
    with client_for(engine) as c:
        r = c.post("/v1/chat/completions", headers={"X-Request-Id": "abc-1"},
                   json={"model": "wholedoc", "messages": MSGS, "thinking": {"type": "enabled"}, "max_tokens": 50,
                         "temperature": 0, "stop": "END", "seed": 7})
    assert r.status_code == 200, r.text
    assert r.headers["x-request-id"] == "abc-1"
    body = r.json()
    assert body["id"] == "abc-1" and body["object"] == "chat.completion" and body["model"] == "wholedoc"
    msg = body["choices"][0]["message"]
    assert msg["reasoning_content"] == msg["reasoning"] == "Let me think"
    assert msg["content"] == "The answer"
    assert body["choices"][0]["finish_reason"] == "stop"
    n = len(TOKENIZER.encode("<｜begin▁of▁sentence｜><｜User｜>" + "word " * 300 + "<｜Assistant｜><think>",
                             add_special_tokens=False).ids)
    u = body["usage"]
    assert u["prompt_tokens"] == n and u["completion_tokens"] == 4 and u["total_tokens"] == n + 4
    assert u["prompt_tokens_details"]["cached_tokens"] == 128
    assert (u["prompt_cache_hit_tokens"], u["prompt_cache_miss_tokens"]) == (128, n - 128)
    assert u["completion_tokens_details"]["reasoning_tokens"] == 2
    p = engine.params["abc-1"]
    assert (p.temperature, p.top_p, p.max_tokens, p.stop, p.seed) == (0, 1.0, 50, ("END",), 7)


def test_openai_stream_progress_comments_reasoning_deltas_usage_and_done():
    engine = ScriptedEngine(["Hm", "m</think>", "Yes", "."], chunk=100)
    with client_for(engine) as c, c.stream("POST", "/v1/chat/completions", json={
            "model": "wholedoc", "messages": MSGS, "stream": True, "stream_options": {"include_usage": True},
            "thinking": {"type": "enabled"}, "max_tokens": 20}) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        lines = sse_lines(r)
    progress = [json.loads(x.split("progress ", 1)[1]) for x in lines if x.startswith(": progress ")]
    assert len(progress) >= 2, lines[:5]
    assert progress[0]["prefill_tokens_done"] < progress[-1]["prefill_tokens_done"]
    assert progress[-1]["prefill_tokens_total"] > 300
    assert lines[-1] == "data: [DONE]"
    chunks = [json.loads(x[6:]) for x in lines if x.startswith("data: {")]
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    deltas = [ch["choices"][0]["delta"] for ch in chunks if ch["choices"]]
    reasoning = "".join(d.get("reasoning_content", "") for d in deltas)
    assert reasoning == "".join(d.get("reasoning", "") for d in deltas) == "Hmm"
    assert "".join(d.get("content") or "" for d in deltas) == "Yes."
    assert [ch["choices"][0]["finish_reason"] for ch in chunks if ch["choices"]][-1] == "stop"
    assert all(ch["usage"] is None for ch in chunks[:-1])
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 4


def test_openai_stream_without_include_usage_has_no_usage_chunk():
    with client_for(ScriptedEngine(["a", "b"])) as c, c.stream("POST", "/v1/chat/completions", json={
            "model": "wholedoc", "messages": MSGS, "stream": True, "max_tokens": 5}) as r:
        chunks = [json.loads(x[6:]) for x in sse_lines(r) if x.startswith("data: {")]
    assert all(ch["choices"] for ch in chunks) and all("usage" not in ch for ch in chunks)


def test_max_tokens_reached_is_finish_reason_length():
    with client_for(ScriptedEngine(["a", "b", "c", "d"])) as c:
        r = c.post("/v1/chat/completions", json={"model": "wholedoc", "messages": MSGS, "max_tokens": 2})
    assert r.json()["choices"][0]["finish_reason"] == "length"
    assert r.json()["choices"][0]["message"]["content"] == "ab"
    assert "reasoning_content" not in r.json()["choices"][0]["message"]


def test_anthropic_stream_event_sequence_with_thinking_then_text():
    engine = ScriptedEngine(["idea", "</think>", "Hi", "!"], cached=64)
    with client_for(engine) as c, c.stream("POST", "/v1/messages", json={
            "model": "wholedoc", "max_tokens": 30, "stream": True, "system": "Be brief.",
            "thinking": {"type": "enabled", "budget_tokens": 1024}, "messages": MSGS}) as r:
        assert r.status_code == 200
        events = [json.loads(x[6:]) for x in sse_lines(r) if x.startswith("data: ")]
    kinds = [e["type"] for e in events]
    assert kinds == ["message_start", "content_block_start", "content_block_delta", "content_block_stop",
                     "content_block_start", "content_block_delta", "content_block_delta", "content_block_stop",
                     "message_delta", "message_stop"]
    assert events[1]["content_block"]["type"] == "thinking" and events[4]["content_block"]["type"] == "text"
    assert events[2]["delta"] == {"type": "thinking_delta", "thinking": "idea"}
    assert [e["delta"]["text"] for e in events[5:7]] == ["Hi", "!"]
    assert [e["index"] for e in events[1:8]] == [0, 0, 0, 1, 1, 1, 1]
    final = events[8]
    assert final["delta"]["stop_reason"] == "end_turn"
    assert final["usage"]["cache_read_input_tokens"] == 64 and final["usage"]["output_tokens"] == 4


def test_anthropic_non_streaming_blocks_and_usage():
    engine = ScriptedEngine(["x", "y"], cached=32)
    with client_for(engine) as c:
        r = c.post("/v1/messages", json={"model": "wholedoc", "max_tokens": 1, "messages": [
            {"role": "user", "content": [{"type": "text", "text": "hello"}]}]})
    body = r.json()
    assert body["type"] == "message" and body["role"] == "assistant"
    assert body["content"] == [{"type": "text", "text": "x"}]
    assert body["stop_reason"] == "max_tokens"
    n = body["usage"]["input_tokens"] + body["usage"]["cache_read_input_tokens"]
    assert n == len(TOKENIZER.encode("<｜begin▁of▁sentence｜><｜User｜>hello<｜Assistant｜></think>",
                                     add_special_tokens=False).ids)


def test_over_window_is_400_with_both_counts_in_the_client_parsable_message():
    with client_for(ScriptedEngine(["a"], max_model_len=200)) as c:
        r = c.post("/v1/chat/completions", json={"model": "wholedoc", "messages": MSGS, "max_tokens": 10})
        a = c.post("/v1/messages", json={"model": "wholedoc", "messages": MSGS, "max_tokens": 10})
    assert r.status_code == 400
    message = r.json()["error"]["message"]
    assert int(WINDOW_IN_MESSAGE.search(message).group(1)) == 200
    assert int(REQUESTED_IN_MESSAGE.search(message).group(1)) > 300
    assert a.status_code == 400 and a.json()["type"] == "error"
    assert a.json()["error"]["type"] == "invalid_request_error"


@pytest.mark.parametrize("path,body,status,fragment", [
    ("/v1/chat/completions", {"model": "gpt-4", "messages": MSGS}, 404, "'wholedoc'"),
    ("/v1/chat/completions", {"model": "wholedoc", "messages": []}, 400, "messages"),
    ("/v1/chat/completions", {"model": "wholedoc", "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "x"}}]}]}, 400, "only text parts"),
    ("/v1/chat/completions", {"model": "wholedoc", "messages": [{"role": "bot", "content": "x"}]}, 400, "role"),
    ("/v1/chat/completions", {"model": "wholedoc", "messages": MSGS, "reasoning_effort": "huge"}, 400, "effort"),
    ("/v1/cache/probe", {"prompt_token_ids": [5, 10 ** 9]}, 400, "vocabulary"),
    ("/v1/tokenize", {}, 400, "messages"),
])
def test_bad_requests_get_openai_error_json(path, body, status, fragment):
    with client_for(ScriptedEngine(["a"])) as c:
        r = c.post(path, json=body)
    assert r.status_code == status, r.text
    assert fragment in r.json()["error"]["message"]
    assert r.json()["error"]["code"] == status


def test_anthropic_missing_max_tokens_is_anthropic_error_json():
    with client_for(ScriptedEngine(["a"])) as c:
        r = c.post("/v1/messages", json={"model": "wholedoc", "messages": MSGS})
    assert r.status_code == 400
    assert r.json()["type"] == "error" and "max_tokens" in r.json()["error"]["message"]


def test_unknown_request_id_is_404_for_status_and_abort():
    with client_for(ScriptedEngine(["a"])) as c:
        assert c.get("/v1/requests/nope").status_code == 404
        assert c.delete("/v1/requests/nope").status_code == 404


def test_finished_request_status_stays_readable():
    with client_for(ScriptedEngine(["a", "b"])) as c:
        c.post("/v1/chat/completions", headers={"X-Request-Id": "done-1"},
               json={"model": "wholedoc", "messages": MSGS, "max_tokens": 5})
        r = c.get("/v1/requests/done-1")
    assert r.json()["state"] == "finished" and r.json()["tokens_generated"] == 2


def test_models_tokenize_probe_health_metrics():
    with client_for(ScriptedEngine(["a"], cached=128, max_model_len=4096)) as c:
        models = c.get("/v1/models").json()["data"]
        count = c.post("/v1/tokenize", json={"messages": MSGS}).json()["count"]
        raw = c.post("/v1/tokenize", json={"prompt": "hello world", "return_token_ids": True}).json()
        probe = c.post("/v1/cache/probe", json={"model": "wholedoc", "messages": MSGS}).json()
        health = c.get("/health")
        metrics = c.get("/metrics").text
    assert models == [{"id": "wholedoc", "object": "model", "created": models[0]["created"], "owned_by": "wholedoc",
                       "max_model_len": 4096}]
    prompt = "<｜begin▁of▁sentence｜><｜User｜>" + "word " * 300 + "<｜Assistant｜></think>"
    assert count == len(TOKENIZER.encode(prompt, add_special_tokens=False).ids)
    assert raw["tokens"] == TOKENIZER.encode("hello world", add_special_tokens=False).ids
    assert probe == {"prompt_tokens": count, "cached_tokens": 128, "tokens_to_compute": count - 128,
                     "max_model_len": 4096}
    assert health.status_code == 200
    for name in ("queue_depth", "running_requests", "cache_usage", "prefix_cache_hit_rate",
                 "prefill_tokens_per_second", "decode_tokens_per_second", "time_to_first_token_seconds_bucket"):
        assert f"wholedoc_inference_{name}" in metrics, name


class FailingEngine(ScriptedEngine):
    """Its step raises after the prefill: the engine is in an unknown state from then on."""

    def step(self):
        if any(r["done"] >= r["total"] for r in self.reqs.values()):
            raise RuntimeError("CUDA error: device-side assert triggered")
        return super().step()


def test_an_engine_failure_ends_streams_with_an_error_and_health_turns_503():
    with client_for(FailingEngine(["a", "b"])) as c:
        with c.stream("POST", "/v1/chat/completions", json={"model": "wholedoc", "messages": MSGS,
                                                            "stream": True, "max_tokens": 5}) as r:
            lines = sse_lines(r)
        errors = [json.loads(x[6:])["error"] for x in lines if x.startswith("data: {") and '"error"' in x]
        assert len(errors) == 1 and "device-side assert" in errors[0]["message"]
        assert "data: [DONE]" not in lines
        health = c.get("/health")
        again = c.post("/v1/chat/completions", json={"model": "wholedoc", "messages": MSGS, "max_tokens": 5})
        metrics = c.get("/metrics").text
    assert health.status_code == 503
    assert again.status_code == 503 and "not running" in again.json()["error"]["message"]
    assert "wholedoc_inference_engine_healthy 0.0" in metrics


def test_a_body_that_is_not_json_says_so():
    with client_for(ScriptedEngine(["a"])) as c:
        r = c.post("/v1/chat/completions", content=b"model=wholedoc")
    assert r.status_code == 400 and "Content-Type: application/json" in r.json()["error"]["message"]


def test_reasoning_effort_max_prepends_the_effort_paragraph_only_when_thinking():
    with client_for(ScriptedEngine(["a"])) as c:
        def count(**kw):
            return c.post("/v1/tokenize", json={"messages": MSGS, **kw}).json()["count"]

        on = {"thinking": {"type": "enabled"}}
        assert count(**on, reasoning_effort="max") > count(**on, reasoning_effort="high") == count(**on)
        assert count(reasoning_effort="max") == count()
