"""Uploads stream into the blob store with a size limit and content sniffing; documents are per tenant."""

import hashlib
from pathlib import Path

import pytest

from tests.api.helpers import MAX_UPLOAD, make_pdf, make_ready, make_zip, upload

pytestmark = pytest.mark.services


def _blob_files(api_env, tenant_id) -> list[Path]:
    root = Path(api_env["WHOLEDOC_BLOB_URL"].removeprefix("file://")) / "tenants" / tenant_id
    return [p for p in root.rglob("*") if p.is_file() and len(p.name) == 64] if root.exists() else []


def test_upload_pdf_multipart_stores_it_and_queues_ingest(make_client, api_env):
    client = make_client()
    pdf = make_pdf(pages=3)
    r = upload(client, pdf, "report.pdf")
    assert r.status_code == 201, r.text
    doc = r.json()
    assert (doc["kind"], doc["media_type"], doc["status"], doc["filename"]) == \
           ("pdf", "application/pdf", "pending", "report.pdf")
    assert (doc["sha256"], doc["size_bytes"]) == (hashlib.sha256(pdf).hexdigest(), len(pdf))
    assert [p.read_bytes() for p in _blob_files(api_env, client.tenant_id)] == [pdf]
    job = client.get(f"/v1/jobs/{doc['ingest_job_id']}").json()
    assert (job["kind"], job["state"], job["document_id"]) == ("ingest", "queued", doc["id"])
    assert client.get(f"/v1/documents/{doc['id']}").json()["sha256"] == doc["sha256"]
    assert [d["id"] for d in client.get("/v1/documents").json()["data"]] == [doc["id"]]


def test_upload_raw_body_is_sniffed_as_codebase(make_client):
    client = make_client()
    data = make_zip()
    r = client.post("/v1/documents?filename=repo.zip", content=data,
                    headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 201, r.text
    assert (r.json()["kind"], r.json()["media_type"], r.json()["filename"]) == ("codebase", "application/zip",
                                                                               "repo.zip")


def test_oversized_upload_is_413_naming_the_limit_and_keeps_nothing(make_client, api_env):
    client = make_client()
    big = make_pdf() + b"\0" * (MAX_UPLOAD + 1)

    def chunks():  # chunked transfer: no Content-Length, so the limit must be enforced while streaming
        for i in range(0, len(big), 65536):
            yield big[i:i + 65536]

    r = client.post("/v1/documents", content=chunks(), headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 413
    assert r.json()["error"] == "too_large" and str(MAX_UPLOAD) in r.json()["detail"]
    r = upload(client, big)  # multipart, file over the limit: counted while streaming
    assert r.status_code == 413 and str(MAX_UPLOAD) in r.json()["detail"]
    huge = make_pdf() + b"\0" * (MAX_UPLOAD + (2 << 20))
    r = client.post("/v1/documents", content=huge, headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 413 and str(MAX_UPLOAD) in r.json()["detail"]  # Content-Length alone refuses it
    assert _blob_files(api_env, client.tenant_id) == []
    assert client.get("/v1/documents").json()["data"] == []


def test_unsupported_or_empty_upload_is_415(make_client):
    client = make_client()
    r = upload(client, b"just some text, not a document" * 40, "notes.txt")
    assert r.status_code == 415 and "PDF" in r.json()["detail"]
    r = client.post("/v1/documents", content=b"", headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 415 and "empty" in r.json()["detail"]


def test_summary_needs_a_ready_document_and_caps_output_per_style(make_client, records):
    client = make_client()
    doc = upload(client, make_pdf()).json()
    r = client.post(f"/v1/documents/{doc['id']}/summaries", json={})
    assert r.status_code == 409 and "pending" in r.json()["detail"]
    make_ready(records, doc["id"])
    r = client.post(f"/v1/documents/{doc['id']}/summaries", json={})
    assert r.status_code == 202, r.text
    assert (r.json()["kind"], r.json()["state"]) == ("summarize", "queued")
    assert r.json()["params"] == {"style": "brief", "thinking": False, "max_tokens": 512, "over_window": "refuse"}
    r = client.post(f"/v1/documents/{doc['id']}/summaries", json={"style": "brief", "max_tokens": 100_000})
    assert r.json()["params"]["max_tokens"] == 512
    r = client.post(f"/v1/documents/{doc['id']}/summaries", json={"style": "limerick"})
    assert r.status_code == 422 and r.json()["error"] == "invalid_request" and "style" in r.json()["detail"]
    r = client.post(f"/v1/documents/{doc['id']}/questions", json={"question": "What is on page 2?"})
    assert r.status_code == 202 and r.json()["kind"] == "answer"
    assert r.json()["params"]["question"] == "What is on page 2?"


def test_delete_removes_document_jobs_and_blob(make_client, api_env):
    client = make_client()
    doc = upload(client, make_pdf("to delete")).json()
    assert len(_blob_files(api_env, client.tenant_id)) == 1
    assert client.delete(f"/v1/documents/{doc['id']}").status_code == 204
    assert client.get(f"/v1/documents/{doc['id']}").status_code == 404
    assert client.get(f"/v1/jobs/{doc['ingest_job_id']}").status_code == 404
    assert _blob_files(api_env, client.tenant_id) == []


def test_multipart_padding_outside_the_file_counts_against_the_limit(make_client):
    """A small file behind megabytes of other form fields must not stream forever unchecked."""
    client = make_client()
    b = "bnd42"
    head = f'--{b}\r\nContent-Disposition: form-data; name="note"\r\n\r\n'.encode()
    tail = (f'\r\n--{b}\r\nContent-Disposition: form-data; name="file"; filename="a.pdf"\r\n'
            f"Content-Type: application/pdf\r\n\r\n").encode() + make_pdf() + f"\r\n--{b}--\r\n".encode()

    def body():  # chunked: no Content-Length for the server to refuse up front
        yield head
        for _ in range((MAX_UPLOAD + (2 << 20)) // 65536):
            yield b"x" * 65536
        yield tail

    r = client.post("/v1/documents", content=body(), headers={"Content-Type": f"multipart/form-data; boundary={b}"})
    assert r.status_code == 413 and str(MAX_UPLOAD) in r.json()["detail"]
    ok = client.post("/v1/documents", content=iter([head, b"short note", tail]),
                     headers={"Content-Type": f"multipart/form-data; boundary={b}"})
    assert ok.status_code == 201 and ok.json()["filename"] == "a.pdf", ok.text
