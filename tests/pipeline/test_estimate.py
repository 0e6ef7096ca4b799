"""Dry-run estimates: arithmetic, the server's cache probe, and batch reuse of a document prefix."""

import pytest

from inference.text import chat
from pipeline.client import ClientConfig, InferenceClient
from pipeline.document import ExtractedDocument, Kind, Section
from pipeline.estimate import Rates, estimate, estimate_batch, estimate_prompt
from pipeline.prompts import question_prompt, summary_prompt
from pipeline.tokens import encode
from tests.pipeline.faultserver import FaultServer

DOC = ExtractedDocument(Kind.PDF, "[page 1]\n" + "Budget lines and more words. " * 300 + "\n",
                        (Section(0, "1", "text", "[page 1]\n" + "Budget lines and more words. " * 300 + "\n"),), {})


def test_arithmetic_time_and_cost():
    r = Rates(prefill_tokens_per_s=1000, decode_tokens_per_s=50, expected_output_ratio=0.5,
              input_price=2.0, cached_price=0.5, output_price=8.0)
    e = estimate(10_000, 1000, cached_tokens=8_000, rates=r)
    assert (e.tokens_to_prefill, e.expected_output_tokens) == (2000, 500)
    assert (e.prefill_seconds, e.decode_seconds, e.seconds) == (2.0, 10.0, 12.0)
    assert e.cost == pytest.approx((2000 * 2.0 + 8000 * 0.5 + 500 * 8.0) / 1e6)
    assert e.as_dict()["tokens_to_prefill"] == 2000 and e.as_dict()["cache_source"] == "cold"
    assert estimate(10, 10).cost is None


def test_probe_from_wholedocs_server():
    s = FaultServer()
    try:
        with InferenceClient(ClientConfig(s.base_url, "m")) as c:
            e = estimate_prompt(summary_prompt(DOC, "brief"), client=c)
        assert (e.prompt_tokens, e.cached_tokens, e.cache_source) == (1000, 900, "probe")
        assert s.received[-1].path == "/v1/cache/probe"
    finally:
        s.close()


def test_cold_when_the_endpoint_has_no_probe():
    s = FaultServer(wholedoc=False)
    try:
        p = summary_prompt(DOC, "detailed")
        with InferenceClient(ClientConfig(s.base_url, "m")) as c:
            e = estimate_prompt(p, client=c)
        assert e.cache_source == "cold" and e.cached_tokens == 0
        assert e.prompt_tokens == len(encode(chat.encode_messages(p.messages)))
        assert e.max_output_tokens == 4096
    finally:
        s.close()


def test_batch_of_questions_reuses_the_document_prefix():
    prompts = [question_prompt(DOC, q) for q in ("Why?", "Who pays?", "When?")]
    e = estimate_batch(prompts)
    prefix = len(encode(chat.BOS + prompts[0].system + chat.USER + prompts[0].document))
    assert prefix > 1000
    assert e.cached_tokens == 2 * (prefix // 128 * 128)
    assert e.prompt_tokens == sum(len(encode(chat.encode_messages(p.messages))) for p in prompts)
    assert (e.requests, e.cache_source, e.max_output_tokens) == (3, "assumed", 3 * 2048)
    other = question_prompt(ExtractedDocument(Kind.PDF, "[page 1]\nOther.\n",
                                              (Section(0, "1", "text", "[page 1]\nOther.\n"),), {}), "Why?")
    assert estimate_batch([prompts[0], other]).cached_tokens == 0  # different documents share nothing


def test_thinking_raises_the_output_cap():
    p = question_prompt(DOC, "Why?")
    assert estimate_prompt(p).max_output_tokens == 2048
    assert estimate_prompt(p, thinking=True).max_output_tokens == 2048 + 8192
    assert estimate_batch([p, p], thinking=True).max_output_tokens == 2 * (2048 + 8192)


def test_batch_on_deepseeks_api_counts_the_warm_up_and_whole_prefix_hits():
    """On DeepSeek's API the worker warms each document once (prefix alone, 1 token): the estimate counts that
    request, and every question (the first one too) finds the whole prefix cached, not rounded to 128-token blocks."""
    prompts = [question_prompt(DOC, q) for q in ("Why?", "Who pays?", "When?")]
    prefix = len(encode(chat.BOS + prompts[0].system + chat.USER + prompts[0].document))
    warm = len(encode(chat.encode_messages([{"role": "system", "content": prompts[0].system},
                                            {"role": "user", "content": prompts[0].document}])))
    with InferenceClient(ClientConfig("https://api.deepseek.com/v1", "deepseek-v4-flash")) as c:
        e = estimate_batch(prompts, client=c)
    assert (e.requests, e.cache_source) == (4, "assumed")
    assert e.cached_tokens == 3 * prefix and prefix % 128 != 0
    assert e.prompt_tokens == warm + sum(len(encode(chat.encode_messages(p.messages))) for p in prompts)
    assert e.max_output_tokens == 1 + 3 * 2048
