"""Batches on a real API process (uvicorn, PostgreSQL, Redis; no worker consumes): submission and its refusals, items
in cursor pages, the dry run (nothing created), cancel, the results files, another tenant's 404s."""

import csv
import io
import json

import pytest

from pipeline.document_json import dumps
from pipeline.pdf import extract_pdf
from pipeline.records.db import transaction
from pipeline.records.documents import mark_document_ready
from pipeline.records.models import new_id
from pipeline.storage import blob_store_from_url
from tests.api.helpers import make_pdf, make_ready, upload

pytestmark = pytest.mark.services


def _ready_docs(client, records, n: int) -> list[str]:
    ids = []
    for i in range(n):
        doc = upload(client, make_pdf(f"batch doc {i} {new_id()}")).json()
        make_ready(records, doc["id"])
        ids.append(doc["id"])
    return ids


def _extracted_doc(client, records, api_env, text: str) -> str:
    """A ready document whose extracted text is really in the API's blob store (what a dry run reads)."""
    pdf = make_pdf(text, pages=2)
    doc = upload(client, pdf).json()
    store = blob_store_from_url(api_env["WHOLEDOC_BLOB_URL"])
    ref = store.put_bytes(client.tenant_id, dumps(extract_pdf(pdf)))
    with transaction(records) as s:
        mark_document_ready(s, doc["id"], text_blob_key=ref.key, num_sections=2, num_tokens=100)
    return doc["id"]


def test_a_batch_makes_one_item_per_document_and_question(make_client, records):
    c = make_client()
    docs = _ready_docs(c, records, 2)
    r = c.post("/v1/batches", json={"questions": ["What?", "Why?", "Who?"], "document_ids": docs, "max_tokens": 8})
    assert r.status_code == 202, r.text
    batch = r.json()
    assert r.headers["location"] == f"/v1/batches/{batch['id']}"
    assert batch["counts"] == {"queued": 6, "running": 0, "done": 0, "failed": 0, "cancelled": 0, "total": 6}
    assert (batch["state"], batch["prompt_tokens"], batch["cached_prompt_tokens"]) == ("queued", 0, 0)
    assert batch["max_tokens"] == 8
    walked, after = [], None
    while True:
        page = c.get(f"/v1/batches/{batch['id']}/items", params={"limit": 4} | ({"after": after} if after else {}))
        assert page.status_code == 200, page.text
        walked += page.json()["data"]
        if not page.json()["has_more"]:
            break
        after = page.json()["last_id"]
    assert [(i["document_id"], i["question"]) for i in walked] == [(d, q) for d in docs for q in ("What?", "Why?",
                                                                                                   "Who?")]
    assert {i["state"] for i in walked} == {"queued"}
    assert c.get(f"/v1/batches/{batch['id']}/items", params={"after": new_id()}).status_code == 422
    assert [b["id"] for b in c.get("/v1/batches").json()["data"]] == [batch["id"]]


def test_batch_refusals_name_what_is_wrong(make_client, records):
    c = make_client()
    docs = _ready_docs(c, records, 11)
    over = c.post("/v1/batches", json={"questions": [f"q{i}?" for i in range(1000)], "document_ids": docs})
    assert over.status_code == 400 and "11,000 items" in over.json()["detail"]
    assert "at most 10,000 items" in over.json()["detail"]
    assert c.post("/v1/batches", json={"questions": [], "document_ids": docs}).status_code == 422
    assert c.post("/v1/batches", json={"questions": ["q"] * 1001, "document_ids": docs[:1]}).status_code == 422
    both = c.post("/v1/batches", json={"questions": ["q"], "document_ids": docs, "corpus_id": new_id()})
    assert both.status_code == 422 and "exactly one of document_ids or corpus_id" in both.json()["detail"]
    assert c.post("/v1/batches", json={"questions": ["q"]}).status_code == 422
    unknown = c.post("/v1/batches", json={"questions": ["q"], "document_ids": [docs[0], new_id()]})
    assert unknown.status_code == 404
    pending = upload(c, make_pdf(f"not ready {new_id()}")).json()["id"]
    r = c.post("/v1/batches", json={"questions": ["q"], "document_ids": [docs[0], pending]})
    assert r.status_code == 409 and f"document {pending} is pending" in r.json()["detail"]
    empty = c.post("/v1/corpora", json={"name": "empty"}).json()
    r = c.post("/v1/batches", json={"questions": ["q"], "corpus_id": empty["id"]})
    assert r.status_code == 409 and "corpus is empty" in r.json()["detail"]
    assert c.get("/v1/batches").json()["data"] == []  # nothing was created


def test_a_corpus_batch_takes_the_corpus_documents_at_submission(make_client, records):
    c = make_client()
    docs = _ready_docs(c, records, 2)
    corpus = c.post("/v1/corpora", json={"name": "set"}).json()
    c.post(f"/v1/corpora/{corpus['id']}/documents", json={"document_ids": docs})
    batch = c.post("/v1/batches", json={"questions": ["Q?"], "corpus_id": corpus["id"]}).json()
    assert batch["corpus_id"] == corpus["id"] and batch["counts"]["total"] == 2
    items = c.get(f"/v1/batches/{batch['id']}/items").json()["data"]
    assert [i["document_id"] for i in items] == docs  # in the order they joined the corpus


def test_dry_run_estimates_without_creating_anything(make_client, records, api_env):
    c = make_client()
    line = "The supplier shipped 400 units in March and 250 in April; returns were 12 units."
    docs = [_extracted_doc(c, records, api_env, "\n".join(f"{line} ({i}) {new_id()}" for i in range(10)))
            for _ in range(2)]
    r = c.post("/v1/batches?dry_run=true", json={"questions": ["How many units?", "Returns?", "When?"],
                                                 "document_ids": docs})
    assert r.status_code == 200, r.text
    est = r.json()
    assert (est["dry_run"], est["items"], est["documents"]) == (True, 6, 2)
    assert est["cache_source"] == "assumed"  # this API has no inference endpoint: estimate.py's fallback
    for d in est["per_document"]:
        # the first question pays for the document; the other two hit its whole 128-token blocks
        assert d["items"] == 3 and 0 < d["cached_tokens"] < d["prompt_tokens"]
        assert d["cached_tokens"] % 128 == 0 and d["cached_tokens"] >= 2 * 128
    assert est["prompt_tokens"] == sum(d["prompt_tokens"] for d in est["per_document"])
    assert est["tokens_to_prefill"] == est["prompt_tokens"] - est["cached_tokens"]
    assert c.get("/v1/batches").json()["data"] == []


def test_cancel_then_results_files(make_client, records):
    c = make_client()
    docs = _ready_docs(c, records, 2)
    batch = c.post("/v1/batches", json={"questions": ["A, or B?", "Line\nbreak \"quoted\""],
                                        "document_ids": docs}).json()
    cancelled = c.post(f"/v1/batches/{batch['id']}/cancel")
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["state"] == "cancelled" and cancelled.json()["counts"]["cancelled"] == 4
    assert c.post(f"/v1/batches/{batch['id']}/cancel").json()["state"] == "cancelled"  # idempotent
    r = c.get(f"/v1/batches/{batch['id']}/results.csv")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert len(rows) == 4 and {row["state"] for row in rows} == {"cancelled"}
    assert [(row["document_id"], row["question"]) for row in rows] == [
        (d, q) for d in docs for q in ("A, or B?", "Line\nbreak \"quoted\"")]
    assert all(row["document_name"] == "doc.pdf" and row["error"] == "the batch was cancelled" for row in rows)
    lines = c.get(f"/v1/batches/{batch['id']}/results.jsonl")
    assert lines.headers["content-type"].startswith("application/x-ndjson")
    objs = [json.loads(line) for line in lines.text.splitlines()]
    assert [o["item_id"] for o in objs] == [row["item_id"] for row in rows]


def test_another_tenant_gets_404_on_every_batch_route(make_client, records):
    a, b = make_client(), make_client()
    docs = _ready_docs(a, records, 1)
    batch = a.post("/v1/batches", json={"questions": ["secret?"], "document_ids": docs}).json()
    for method, path in (("GET", ""), ("GET", "/items"), ("GET", "/results.csv"), ("GET", "/results.jsonl"),
                         ("POST", "/cancel")):
        r = b.request(method, f"/v1/batches/{batch['id']}{path}")
        assert r.status_code == 404, (path, r.text)
    assert b.post("/v1/batches", json={"questions": ["q"], "document_ids": docs}).status_code == 404
    assert b.get("/v1/batches").json()["data"] == []
    assert a.get(f"/v1/batches/{batch['id']}").json()["state"] == "queued"
