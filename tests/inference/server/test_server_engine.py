"""A real server process on the real engine (tiny random-weight checkpoint), driven by the unmodified official
`openai` and `anthropic` clients and by wholedoc's own pipeline client: streaming and not, thinking on and off,
usage fields, cached tokens on a shared document prefix, concurrent requests."""

import threading

import httpx
import openai
import pytest

from inference.text.tokenizer import END_THINK, THINK
from pipeline.client import ClientConfig, InferenceClient
from tests.inference.server.helpers import ROOMY, Server, document_question

pytestmark = pytest.mark.services

DOC = "The quarterly report covers revenue, costs and the outlook for each region. " * 40  # ~600 tokens


def ask(question: str) -> list[dict]:
    return document_question(DOC, question)


def token_ids(server, messages, thinking: bool) -> list[int]:
    r = httpx.post(f"{server.url}/tokenize", json={"messages": messages, "return_token_ids": True,
                                                  "thinking": {"type": "enabled" if thinking else "disabled"}})
    return r.json()["tokens"]


def test_models_lists_the_window(oai):
    models = oai.models.list().data
    assert [m.id for m in models] == ["wholedoc"]
    assert models[0].model_extra["max_model_len"] == 1048576


def test_openai_non_streaming_thinking_off(server, oai):
    msgs = [{"role": "user", "content": "Say something."}]
    r = oai.chat.completions.create(model="wholedoc", messages=msgs, max_tokens=6, temperature=0,
                                    extra_body={"thinking": {"type": "disabled"}})
    assert r.choices[0].finish_reason in ("length", "stop")
    assert r.choices[0].message.content
    assert (r.choices[0].message.model_extra or {}).get("reasoning_content") is None
    assert r.usage.prompt_tokens == len(token_ids(server, msgs, thinking=False))
    assert 1 <= r.usage.completion_tokens <= 6
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens


def test_openai_streaming_equals_non_streaming_and_reports_usage(oai):
    msgs = [{"role": "user", "content": "Count to three."}]
    kw = dict(model="wholedoc", messages=msgs, max_tokens=8, temperature=0,
              extra_body={"thinking": {"type": "disabled"}})
    whole = oai.chat.completions.create(**kw)
    chunks = list(oai.chat.completions.create(**kw, stream=True, stream_options={"include_usage": True}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == whole.usage.completion_tokens
    assert chunks[-1].usage.prompt_tokens == whole.usage.prompt_tokens
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == whole.choices[0].finish_reason


def test_openai_thinking_on_prompt_ends_in_think_and_deltas_carry_reasoning(server, oai):
    """A thinking-on request starts in reasoning: generated text before `</think>` is reasoning_content."""
    msgs = [{"role": "user", "content": "Think about it."}]
    ids = token_ids(server, msgs, thinking=True)
    assert ids[-1] == THINK and token_ids(server, msgs, thinking=False)[-1] == END_THINK
    kw = dict(model="wholedoc", messages=msgs, max_tokens=6, temperature=0,
              extra_body={"thinking": {"type": "enabled"}})
    chunks = list(oai.chat.completions.create(**kw, stream=True))
    deltas = [c.choices[0].delta.model_extra or {} for c in chunks if c.choices]
    reasoning = "".join(d.get("reasoning_content") or "" for d in deltas)
    assert reasoning and reasoning == "".join(d.get("reasoning") or "" for d in deltas)
    whole = oai.chat.completions.create(**kw).choices[0].message
    assert whole.model_extra["reasoning_content"] == reasoning
    assert whole.content == "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


def test_second_request_sharing_the_document_prefix_gets_cached_tokens(server, oai, claude):
    first = oai.chat.completions.create(model="wholedoc", messages=ask("What is covered?"), max_tokens=2,
                                        temperature=0, extra_body={"thinking": {"type": "disabled"}})
    assert first.usage.prompt_tokens > 500
    assert first.usage.prompt_tokens_details.cached_tokens == 0
    second_msgs = ask("Which regions?")
    probe = httpx.post(f"{server.url}/cache/probe", json={"model": "wholedoc", "messages": second_msgs}).json()
    second = oai.chat.completions.create(model="wholedoc", messages=second_msgs, max_tokens=2, temperature=0,
                                         extra_body={"thinking": {"type": "disabled"}})
    cached = second.usage.prompt_tokens_details.cached_tokens
    assert 0 < cached < second.usage.prompt_tokens
    assert probe == {"prompt_tokens": second.usage.prompt_tokens, "cached_tokens": cached,
                     "tokens_to_compute": second.usage.prompt_tokens - cached, "max_model_len": 1048576}
    extra = second.usage.model_extra
    assert (extra["prompt_cache_hit_tokens"], extra["prompt_cache_miss_tokens"]) == (
        cached, second.usage.prompt_tokens - cached)
    third = claude.messages.create(model="wholedoc", max_tokens=2, system="Answer from the document.",
                                   messages=[{"role": "user", "content": ask("Costs?")[1]["content"]}])
    assert third.usage.cache_read_input_tokens > 0
    assert third.usage.cache_read_input_tokens + third.usage.input_tokens == len(
        token_ids(server, ask("Costs?"), thinking=False))


@pytest.mark.slow
def test_concurrent_requests_each_get_their_own_answer(tiny_checkpoint, tmp_path):
    """Four requests at once give exactly what each gives alone (greedy), sharing forward calls.

    A server of its own: its counters start at zero, so the test knows what they must reach (the stats come from
    a snapshot refreshed about twice a second, so they are waited for, not read once after a sleep)."""
    s = Server(tiny_checkpoint, *ROOMY, log=tmp_path / "server.log")
    try:
        oai = openai.OpenAI(base_url=s.url, api_key="unused", max_retries=0, timeout=60)
        prompts = [f"Topic number {i}: " + "words " * (20 * i) for i in range(4)]
        kw = dict(model="wholedoc", max_tokens=8, temperature=0, extra_body={"thinking": {"type": "disabled"}})
        alone = [oai.chat.completions.create(messages=[{"role": "user", "content": p}], **kw).choices[0]
                 .message.content for p in prompts]
        together: dict[int, str] = {}

        def run(i):
            chunks = oai.chat.completions.create(messages=[{"role": "user", "content": prompts[i]}], stream=True,
                                                 **kw)
            together[i] = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)

        def counted(decode_tokens: int):
            """Idle, with `decode_tokens` decode steps counted: every token but each request's first (its prefill's)
            of 8 per request, so the snapshot holds all of the requests' work."""
            return s.wait_metrics(lambda m: m["decode_tokens_total"] >= decode_tokens and (
                m["running_requests"], m["queue_depth"]) == (0, 0), f"{decode_tokens} decode tokens counted")

        before = counted(4 * 7)
        threads = [threading.Thread(target=run, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert [together.get(i) for i in range(4)] == alone
        after = counted(2 * 4 * 7)
        calls = after["forward_calls_total"] - before["forward_calls_total"]
        reqs = after["forward_requests_total"] - before["forward_requests_total"]
        assert reqs >= 4 * 8 and calls < reqs  # 4 × (prefill giving token 1 + 7 decodes), sharing forward calls
        assert after["preemptions_total"] == 0
    finally:
        s.close()


@pytest.mark.parametrize("thinking", [False, True])
def test_anthropic_streaming_and_not(claude, thinking):
    kw = dict(model="wholedoc", max_tokens=6, extra_body={"temperature": 0},
              messages=[{"role": "user", "content": "Hello?"}],
              thinking={"type": "enabled", "budget_tokens": 1024} if thinking else {"type": "disabled"})
    whole = claude.messages.create(**kw)
    with claude.messages.stream(**kw) as stream:
        events = [e.type for e in stream]
        final = stream.get_final_message()
    assert events[0] == "message_start" and events[-1] == "message_stop"
    assert [b.type for b in final.content] == [b.type for b in whole.content]
    assert whole.content[0].type == ("thinking" if thinking else "text")
    if thinking:
        assert final.content[0].thinking == whole.content[0].thinking != ""
    else:
        assert final.content[0].text == whole.content[0].text != ""
    assert final.usage.output_tokens == whole.usage.output_tokens
    assert (final.usage.input_tokens, final.usage.cache_read_input_tokens) == (
        whole.usage.input_tokens, whole.usage.cache_read_input_tokens)
    assert whole.stop_reason in ("max_tokens", "end_turn")


def test_thinking_budget_closes_the_thinking_block_and_the_model_answers(server, claude, oai):
    """budget_tokens is enforced: after that many reasoning tokens `</think>` is forced and the answer follows."""
    kw = dict(model="wholedoc", max_tokens=9, messages=[{"role": "user", "content": "Hello?"}])
    free = claude.messages.create(**kw, extra_body={"temperature": 0},
                                  thinking={"type": "enabled", "budget_tokens": 1024})
    capped = claude.messages.create(**kw, extra_body={"temperature": 0},
                                    thinking={"type": "enabled", "budget_tokens": 3})
    assert [b.type for b in free.content] == ["thinking"]  # the random model never closes it on its own
    assert [b.type for b in capped.content] == ["thinking", "text"] and capped.content[1].text != ""
    tok = httpx.post(f"{server.url}/tokenize", json={"prompt": capped.content[0].thinking, "return_token_ids": True})
    assert tok.json()["count"] == 3 and capped.content[0].thinking == free.content[0].thinking[
        : len(capped.content[0].thinking)]  # the same first three reasoning tokens, then the cut
    chat = oai.chat.completions.create(model="wholedoc", messages=kw["messages"], max_tokens=9, temperature=0,
                                       extra_body={"thinking": {"type": "enabled", "budget_tokens": 3}})
    msg = chat.choices[0].message
    assert msg.reasoning_content == capped.content[0].thinking and msg.content == capped.content[1].text
    bad = httpx.post(f"{server.url}/messages", json={**kw, "thinking": {"type": "enabled", "budget_tokens": -1}})
    assert bad.status_code == 400 and "budget_tokens" in bad.text


def test_pipeline_client_streams_with_progress_and_reads_the_extras(server):
    progress = []
    with InferenceClient(ClientConfig(base_url=server.url, model="wholedoc", max_retries=0)) as client:
        done = client.chat(ask("Outlook?"), max_tokens=4, thinking=False, temperature=0.0, request_id="pipe-1",
                           on_progress=progress.append)
        assert client.max_model_len() == 1048576
        assert client.tokenize(ask("Outlook?")) == done.usage.prompt_tokens
        probe = client.probe_cache(ask("Outlook?"))
        status = client.request_status("pipe-1")
    assert done.request_id == "pipe-1" and done.usage.completion_tokens == 4 and done.content
    assert any(p.phase == "prefill" and p.prefill_tokens_total == done.usage.prompt_tokens for p in progress)
    assert probe.prompt_tokens == done.usage.prompt_tokens and probe.cached_tokens > 0
    assert (status.state, status.tokens_generated) == ("finished", 4)



def test_metrics_reflect_the_traffic(server, oai):
    for question in ("Metrics one?", "Metrics two?"):
        oai.chat.completions.create(model="wholedoc", messages=ask(question), max_tokens=2, temperature=0,
                                    extra_body={"thinking": {"type": "disabled"}})
    # the engine's counters come from a stats snapshot refreshed about twice a second: wait until it shows the traffic
    m = server.wait_metrics(lambda m: m["prefill_tokens_total"] > 500 and m["decode_tokens_total"] >= 2
                            and m["prefix_cache_hit_tokens_total"] > 0, "the two requests counted")
    assert m["decode_tokens_total"] >= 2  # each first token comes from its prefill step
    assert 0 < m["prefix_cache_hit_rate"] < 1
    assert m["time_to_first_token_seconds_count"] >= 2
    assert m["cache_blocks_total"] > 0 and m["engine_healthy"] == 1


@pytest.mark.slow
def test_bench_server_smoke(tiny_checkpoint, capsys):
    """The benchmark module runs end to end and counts exactly the fixed-length outputs on both paths."""
    import json

    from inference.server import bench_server

    bench_server.main(["--checkpoint", str(tiny_checkpoint), "--requests", "2", "--prompt-words", "40",
                       "--max-tokens", "3"])
    lines = capsys.readouterr().out.strip().splitlines()
    result = json.loads(lines[-1])
    assert result["bench"] == "server" and result["requests"] == 2
    assert [line.split()[2] for line in lines[1:3]] == ["6", "6"]  # tokens column: 2 requests x 3 tokens
