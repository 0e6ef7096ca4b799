"""`cache_salt` on a real server process (tiny checkpoint), sent by the unmodified `openai` and `anthropic` clients
(`extra_body`) and by wholedoc's pipeline client: the same document under another salt gets no cached tokens, the
same salt hits exactly as the probe predicts, a bad salt is a 400 in each API's own error shape."""

import anthropic
import httpx
import openai
import pytest

from pipeline.client import ClientConfig, InferenceClient
from tests.inference.server.helpers import document_question

pytestmark = pytest.mark.services

DOC = "The ledger lists invoices, vendors, payment terms and the disputed amounts of each quarter. " * 40
OFF = {"type": "disabled"}


def ask(question: str, doc: str = DOC) -> list[dict]:
    return document_question(doc, question)


def chat(oai, messages, salt: str | None):
    extra = {"thinking": OFF} | ({"cache_salt": salt} if salt is not None else {})
    return oai.chat.completions.create(model="wholedoc", messages=messages, max_tokens=2, temperature=0,
                                       extra_body=extra).usage


def probe(server, messages, salt: str | None) -> dict:
    body = {"model": "wholedoc", "messages": messages, "thinking": OFF}
    r = httpx.post(f"{server.url}/cache/probe", json=body | ({"cache_salt": salt} if salt is not None else {}))
    assert r.status_code == 200, r.text
    return r.json()


def test_openai_salts_separate_the_cache_and_the_same_salt_hits_as_probed(server, oai):
    first = chat(oai, ask("Which vendors?"), "tenant-a")
    assert first.prompt_tokens > 500 and first.prompt_tokens_details.cached_tokens == 0
    msgs = ask("Which amounts are disputed?")
    assert probe(server, msgs, "tenant-b")["cached_tokens"] == 0
    assert probe(server, msgs, None)["cached_tokens"] == 0  # no salt is a cache of its own
    other = chat(oai, msgs, "tenant-b")
    assert other.prompt_tokens_details.cached_tokens == 0
    assert other.model_extra["prompt_cache_hit_tokens"] == 0
    predicted = probe(server, msgs, "tenant-a")
    same = chat(oai, msgs, "tenant-a")
    cached = same.prompt_tokens_details.cached_tokens
    assert 0 < cached < same.prompt_tokens
    assert predicted == {"prompt_tokens": same.prompt_tokens, "cached_tokens": cached,
                         "tokens_to_compute": same.prompt_tokens - cached, "max_model_len": 1048576}


def test_anthropic_salts_separate_the_cache(server, claude):
    doc = DOC.replace("ledger", "register")

    def ask_claude(question: str, salt: str):
        return claude.messages.create(model="wholedoc", max_tokens=2, system="Answer from the document.",
                                      messages=[{"role": "user", "content": ask(question, doc)[1]["content"]}],
                                      extra_body={"cache_salt": salt}).usage

    assert ask_claude("Vendors?", "tenant-a").cache_read_input_tokens == 0
    other = ask_claude("Amounts?", "tenant-b")
    assert other.cache_read_input_tokens == 0 and other.input_tokens > 500
    predicted = probe(server, ask("Terms?", doc), "tenant-a")["cached_tokens"]
    same = ask_claude("Terms?", "tenant-a")
    assert same.cache_read_input_tokens == predicted > 0


def test_pipeline_client_sends_the_salt_on_chat_and_probe(server):
    doc = DOC.replace("ledger", "journal")
    with InferenceClient(ClientConfig(base_url=server.url, model="wholedoc", max_retries=0)) as client:
        first = client.chat(ask("Vendors?", doc), max_tokens=2, thinking=False, cache_salt="tenant-a")
        assert first.usage.cached_tokens == 0
        msgs = ask("Terms?", doc)
        assert client.probe_cache(msgs, cache_salt="tenant-b").cached_tokens == 0
        predicted = client.probe_cache(msgs, cache_salt="tenant-a").cached_tokens
        assert client.chat(msgs, max_tokens=2, thinking=False, cache_salt="tenant-b").usage.cached_tokens == 0
        same = client.chat(msgs, max_tokens=2, thinking=False, cache_salt="tenant-a")
    assert same.usage.cached_tokens == predicted > 0


@pytest.mark.parametrize("salt", ["", "x" * 257, 42, ["a"]])
def test_a_bad_salt_is_a_400_in_each_apis_error_shape(server, oai, claude, salt):
    msgs = [{"role": "user", "content": "Hi."}]
    with pytest.raises(openai.BadRequestError) as e:
        oai.chat.completions.create(model="wholedoc", messages=msgs, max_tokens=1, extra_body={"cache_salt": salt})
    assert e.value.status_code == 400 and "cache_salt" in e.value.body["message"]
    with pytest.raises(anthropic.BadRequestError) as a:
        claude.messages.create(model="wholedoc", max_tokens=1, messages=msgs, extra_body={"cache_salt": salt})
    assert a.value.body["type"] == "error" and a.value.body["error"]["type"] == "invalid_request_error"
    assert "cache_salt" in a.value.body["error"]["message"]
    r = httpx.post(f"{server.url}/cache/probe", json={"messages": msgs, "cache_salt": salt})
    assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error"
    assert "cache_salt" in r.json()["error"]["message"]
