"""`workers.ingest`: blob → extracted document (in a child process with limits) → text blob + token count."""

import logging
import tempfile
from pathlib import Path

from sqlalchemy.orm import Session

from pipeline import document_json
from pipeline.records import jobs
from pipeline.records.db import transaction
from pipeline.records.documents import mark_document_failed, mark_document_ready
from pipeline.records.models import Document, Job
from pipeline.search import search_index
from workers.app import INGEST, app
from workers.runner import JobContext, run_or_resend
from workers.settings import blob_store, sessions

log = logging.getLogger(__name__)
SUFFIX = {"pdf": ".pdf", "codebase": ".zip"}


def _document_failed(session: Session, job: Job, reason: str) -> None:
    mark_document_failed(session, job.document_id, reason)


def _ingest(ctx: JobContext) -> None:
    from pipeline.ingest import ingest_path
    from pipeline.tokens import count_tokens

    with sessions()() as s:
        doc = s.get(Document, ctx.job.document_id)
        assert doc is not None and doc.tenant_id == ctx.job.tenant_id, f"job {ctx.job.id}: document missing"
        blob_key, kind, tenant_id, media_type = doc.blob_key, doc.kind, doc.tenant_id, doc.media_type
    ctx.progress(stage="extract", progress=0.05)
    store = blob_store()
    suffix = ".tar.gz" if media_type == "application/gzip" else SUFFIX.get(kind, "")
    with tempfile.TemporaryDirectory(prefix="wholedoc-ingest-") as tmp:
        path = Path(tmp) / f"upload{suffix}"
        with path.open("wb") as f:
            store.copy_to(blob_key, f)  # verifies the sha256 recorded at upload
        extracted = ingest_path(path)
    ctx.lease.check()
    ctx.progress(stage="count", progress=0.8)
    num_tokens = count_tokens(extracted.text, tokenizer_path=ctx.settings.tokenizer_path)
    ref = store.put_bytes(tenant_id, document_json.dumps(extracted))
    store.add_ref(ref.key, ctx.job.document_id)
    with transaction(sessions()) as s:
        jobs.complete_job(s, ctx.job.id, ctx.settings.owner)
        doc = mark_document_ready(s, ctx.job.document_id, text_blob_key=ref.key,
                                  num_sections=len(extracted.sections), num_tokens=num_tokens, title=extracted.title)
        search_index(s).index_document(s, tenant_id, ctx.job.document_id, extracted)  # corpus questions search it
        if extracted.kind == "pdf":  # the pages the document's API representation names (docs/web.md)
            doc.page_status = {status: [int(x.anchor) for x in extracted.sections if x.status == status]
                               for status in ("failed", "scanned")}


@app.task(name=INGEST, soft_time_limit=900, time_limit=960)
def ingest(job_id: str, tenant_id: str) -> str:
    return run_or_resend(job_id, tenant_id, "ingest", _ingest, on_failed=_document_failed)
