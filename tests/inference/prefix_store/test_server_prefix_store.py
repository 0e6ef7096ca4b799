"""Real `python -m inference.serve` processes with --prefix-store (docs/prefix-store.md), the official OpenAI
client on them: a 32K-token document survives a restart (the second question's cached_tokens >= 95 % of it and its
greedy answer equals a cold run's, fp32). Two servers sharing a bucket: tests/api/test_prefix_store_documents.py."""

import random

import httpx
import openai
import pytest

from tests.inference.server.helpers import Server, document_question

pytestmark = [pytest.mark.slow, pytest.mark.services]


def words(n: int, seed: int) -> str:
    rng = random.Random(seed)
    vocab = [f"{a}{b}" for a in ("ka", "lo", "mi", "ne", "ru", "ta", "vo", "ze") for b in ("n", "s", "r", "l", "t")]
    lines = []
    for i in range(0, n, 12):
        lines.append(" ".join(rng.choice(vocab) for _ in range(12)) + f" ({i}).")
    return "\n".join(lines)


def ask(server: Server, doc: str, question: str, **extra) -> openai.types.chat.ChatCompletion:
    client = openai.OpenAI(base_url=server.url, api_key="unused", max_retries=0, timeout=600)
    return client.chat.completions.create(model="wholedoc", messages=document_question(doc, question), max_tokens=8,
                                          temperature=0, extra_body={"ignore_eos": True, **extra})


def tokens_of(server: Server, doc: str) -> int:
    return httpx.post(f"{server.root}/v1/tokenize", json={"prompt": doc}, timeout=60).json()["count"]


def written(server: Server, n: int) -> dict:
    return server.wait_metrics(lambda m: m.get("prefix_store_writes_total", 0) >= n, f"{n} snapshots written", 60)


def test_a_32k_document_survives_a_restart(tiny_checkpoint, tmp_path):
    store = f"file://{tmp_path / 'store'}"
    doc = words(25_000, seed=3)
    fast = ("--max-num-batched-tokens", "8192")  # fewer, larger prefill steps
    first = Server(tiny_checkpoint, "--prefix-store", store, *fast, log=tmp_path / "first.log")
    try:
        n_doc = tokens_of(first, doc)
        assert 32_000 <= n_doc <= 36_000, n_doc
        q1 = ask(first, doc, "What is the first word?")
        assert q1.usage.prompt_tokens_details.cached_tokens == 0
        # the cold answer to the second question: another salt shares no cache block (nor any snapshot)
        cold = ask(first, doc, "How many lines are there?", cache_salt="cold-reference")
        assert cold.usage.prompt_tokens_details.cached_tokens == 0
        written(first, 2)
    finally:
        first.close()

    second = Server(tiny_checkpoint, "--prefix-store", store, *fast, log=tmp_path / "second.log")
    try:
        # the probe already counts what a restore would give
        probe = httpx.post(f"{second.root}/v1/cache/probe", json={
            "messages": document_question(doc, "How many lines are there?")}, timeout=60).json()
        assert probe["cached_tokens"] >= 0.95 * n_doc, probe
        warm = ask(second, doc, "How many lines are there?")
        cached = warm.usage.prompt_tokens_details.cached_tokens
        assert cached >= 0.95 * n_doc, (cached, n_doc)
        assert warm.choices[0].message.content == cold.choices[0].message.content
        m = second.wait_metrics(lambda m: m.get("prefix_restored_tokens_total") == cached, "restored tokens counted")
        assert m["prefix_store_restores_total"] == 1
        assert m["prefix_restored_tokens_total"] + m["prefix_recomputed_tokens_total"] <= warm.usage.prompt_tokens
    finally:
        second.close()
