"""Small factories for the API tests: PDFs and archives made in memory, documents made ready in the records."""

import io
import zipfile

import httpx
import pymupdf

from pipeline.records import jobs
from pipeline.records.db import transaction
from pipeline.records.documents import mark_document_ready
from tests.helpers.wait import wait_until

MAX_UPLOAD = 256 * 1024  # WHOLEDOC_MAX_UPLOAD_BYTES of the API the tests start
MAX_JSON = 64 * 1024  # its WHOLEDOC_MAX_JSON_BYTES


def _walk(routes):
    for r in routes:
        if hasattr(r, "original_router"):  # an included router (FastAPI >= 0.16x keeps them nested)
            yield from _walk(r.original_router.routes)
        elif hasattr(r, "methods"):
            yield r


def app_routes() -> list[tuple[str, str, object]]:
    """Every /v1 (method, path, route) the app serves, read from the app itself so a new route can't be forgotten."""
    from api.main import create_app
    from api.settings import ApiSettings

    app = create_app(ApiSettings(database_url="sqlite://", blob_url="file:///nonexistent"))
    return [(m, r.path, r) for r in _walk(app.routes) if r.path.startswith("/v1/")
            for m in sorted(r.methods - {"HEAD", "OPTIONS"})]


def make_pdf(text: str = "hello", pages: int = 1) -> bytes:
    doc = pymupdf.open()
    for i in range(pages):
        doc.new_page().insert_text((72, 72), f"{text} {i + 1}")
    return doc.tobytes()


def make_zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("src/app.py", "print('hi')\n" * 50)
    return buf.getvalue()


def upload(client, data: bytes, name: str = "doc.pdf"):
    return client.post("/v1/documents", files={"file": (name, data, "application/octet-stream")})


def make_ready(records, document_id: str) -> None:
    """What a finished ingest job leaves behind (no worker runs in the API tests)."""
    with transaction(records) as s:
        mark_document_ready(s, document_id, text_blob_key="tenants/x/blobs/sha256/" + "0" * 64, num_sections=1,
                            num_tokens=10)


def finish(records, job_id: str, text: str = "a summary [p. 1]") -> str:
    """Run the job's lifecycle as a worker would and store a result; returns the result id."""
    with transaction(records) as s:
        assert jobs.claim_job(s, job_id, "test-worker", 60) is not None
        result = jobs.finish_job(s, job_id, "test-worker", text=text,
                                 citations=[{"anchor": "1", "status": "verified"}],
                                 usage={"prompt_tokens": 100, "completion_tokens": 5, "cached_tokens": 0})
        return result.id


def job_finished(job: dict) -> bool:
    return job["state"] in ("done", "failed", "cancelled")


def wait_job_http(client, job_id: str, until, timeout: float = 60, poll: float = 0.1) -> dict:
    """Poll `GET /v1/jobs/{id}` until `until(job)` holds; fail with the last job seen after `timeout` seconds."""
    seen = {}

    def done():
        seen["job"] = client.get(f"/v1/jobs/{job_id}").json()
        return until(seen["job"])

    wait_until(done, timeout, lambda: f"job {job_id} condition (last seen: {seen.get('job')})", poll)
    return seen["job"]


def wait_request_aborted(base: str, request_id: str, what: str, timeout: float = 15) -> dict:
    """Poll the inference server's `GET /v1/requests/{id}` at `base` until the request is aborted; its last status.
    Fails after `timeout` seconds naming `what` and the last status seen."""
    seen = {}

    def aborted() -> bool:
        seen["status"] = httpx.get(f"{base}/v1/requests/{request_id}", timeout=5).json()
        return seen["status"].get("state") == "aborted"

    wait_until(aborted, timeout, lambda: f"abort of {what} (last: {seen.get('status')})", 0.1)
    return seen["status"]


PUBLIC_HOOK = "https://93.184.215.14/hooks/wholedoc"  # a public address literal: registers without DNS


def digest_and_webhook_ids(client, corpus_id: str) -> dict:
    """A digest schedule of the corpus, a run of it and a webhook, made through the API: their ids, by the names of
    the route parameters (digest_id, run_id, webhook_id)."""
    digest = client.post(f"/v1/corpora/{corpus_id}/digests", json={"cron": "0 7 * * 1"}).json()
    run = client.post(f"/v1/digests/{digest['id']}/run").json()
    hook = client.post("/v1/webhooks", json={"url": PUBLIC_HOOK, "events": ["job.done"]}).json()
    return {"digest_id": digest["id"], "run_id": run["id"], "webhook_id": hook["id"]}
