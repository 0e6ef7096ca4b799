"""The API's answer for a document over the window, from its token count (docs/over-window.md): 400
`document_too_long` with both counts and the way out, nothing queued; `over_window: "sections"` queues the job.
The session's API runs with no WHOLEDOC_MAX_MODEL_LEN: the window is DeepSeek-V4's 1,048,576 (no worker runs here)."""

import pytest

from pipeline.records.db import transaction
from pipeline.records.documents import mark_document_ready
from tests.api.helpers import make_pdf, upload

pytestmark = pytest.mark.services
REFMAN = 1_134_704  # R's reference manual: 2,415 pages, over V4's window


def _ready(client, records, num_tokens: int) -> str:
    doc = upload(client, make_pdf(f"doc {num_tokens}")).json()
    with transaction(records) as s:
        mark_document_ready(s, doc["id"], text_blob_key="tenants/x/blobs/sha256/" + "0" * 64, num_sections=2415,
                            num_tokens=num_tokens)
    return doc["id"]


def _kinds(client, doc_id: str) -> list[str]:
    return [j["kind"] for j in client.get("/v1/jobs", params={"document_id": doc_id}).json()["data"]]


def test_a_summary_over_v4s_window_is_refused_with_the_counts_and_nothing_queued(make_client, records):
    client = make_client()
    doc_id = _ready(client, records, REFMAN)
    r = client.post(f"/v1/documents/{doc_id}/summaries", json={"style": "brief"})
    assert r.status_code == 400, r.text
    body = r.json()
    assert body["error"] == "document_too_long"
    assert (body["document_tokens"], body["window_tokens"]) == (REFMAN, 1_048_576)
    framing = body["needed_tokens"] - REFMAN - 512  # the brief style's answer cap, then the prompt around the text
    assert 200 < framing < 400
    assert body["detail"] == (
        f"the document is 1,134,704 tokens; with the answer it needs {body['needed_tokens']:,}, the window is "
        "1,048,576: summarize it in sections with `--over-window sections` (API: `\"over_window\": \"sections\"`), "
        "or ask about it with the same option")
    thinking = client.post(f"/v1/documents/{doc_id}/summaries", json={"thinking": True}).json()
    assert thinking["needed_tokens"] == body["needed_tokens"] + 8192  # the reasoning's room counts too
    asked = client.post(f"/v1/documents/{doc_id}/questions", json={"question": "What is lm()?"})
    assert asked.status_code == 400 and asked.json()["error"] == "document_too_long"
    assert _kinds(client, doc_id) == ["ingest"]


def test_over_window_sections_queues_the_job_with_the_option(make_client, records):
    client = make_client()
    doc_id = _ready(client, records, REFMAN)
    r = client.post(f"/v1/documents/{doc_id}/summaries", json={"over_window": "sections"})
    assert r.status_code == 202, r.text
    assert r.json()["params"]["over_window"] == "sections" and r.json()["parts"] is None  # not planned yet
    r = client.post(f"/v1/documents/{doc_id}/questions", json={"question": "What is lm()?", "over_window": "sections"})
    assert r.status_code == 202 and r.json()["params"]["over_window"] == "sections"
    bad = client.post(f"/v1/documents/{doc_id}/summaries", json={"over_window": "chunks"})
    assert bad.status_code == 422 and "over_window" in bad.json()["detail"]


def test_a_document_that_may_fit_is_left_to_the_job(make_client, records):
    """The token count alone only rules out what cannot fit: the prompt's framing is the job's to count."""
    client = make_client()
    doc_id = _ready(client, records, 1_048_576 - 512)
    assert client.post(f"/v1/documents/{doc_id}/summaries", json={}).status_code == 202
    assert client.post(f"/v1/documents/{doc_id}/summaries", json={"max_tokens": 100}).status_code == 202
