"""/v1/documents: upload (streamed), list, get, delete, and create summary / question jobs."""

import logging
import re
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from fastapi.concurrency import run_in_threadpool

from api.admission import admit_llm_job
from api.deps import SessionDep, TenantDep
from api.routes.common import DocumentId, Limit, Offset, enqueue, errors, job_public
from api.schemas import DocumentCreated, DocumentList, DocumentPublic, JobPublic, QuestionCreate, SummaryCreate
from api.upload import MULTIPART_SLACK, stream_to_store, too_large
from pipeline.errors import Conflict
from pipeline.prompts.builders import QUESTION_MAX_TOKENS
from pipeline.prompts.styles import get_style
from pipeline.records import jobs
from pipeline.records.db import transaction
from pipeline.records.documents import create_document, delete_document, get_document, list_documents
from pipeline.records.models import DocumentStatus, JobState

log = logging.getLogger(__name__)
router = APIRouter(prefix="/v1/documents", tags=["documents"])

UPLOAD_BODY = {"requestBody": {"required": True, "description": "the file: multipart/form-data (field `file`) or "
               "the raw bytes; its type is sniffed from the content (PDF, zip, tar, tar.gz)",
               "content": {"multipart/form-data": {"schema": {"type": "object", "required": ["file"], "properties": {
                   "file": {"type": "string", "format": "binary"}}}},
                   "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}}


FILENAME_MAX = 500  # the documents.filename column
CONTROL = re.compile(r"[\x00-\x1f\x7f]")
FilenameQuery = Annotated[str | None, Query(max_length=FILENAME_MAX, pattern=r"^[^\x00-\x1f\x7f]*$",
                                            description="the name to keep (default: the multipart part's filename)")]


def _part_filename(name: str | None) -> str | None:
    """The multipart part's filename as a name to keep: control characters dropped, at most FILENAME_MAX long."""
    return CONTROL.sub("", name or "")[:FILENAME_MAX] or None


def _create_rows(sessions, tenant_id, ref, filename, kind, media_type):
    with transaction(sessions) as s:
        doc = create_document(s, tenant_id, kind=kind, blob_key=ref.key, sha256=ref.sha256, size_bytes=ref.size,
                              filename=filename, media_type=media_type)
        job = jobs.create_job(s, tenant_id, "ingest", document_id=doc.id)
        out = DocumentCreated(**DocumentPublic.model_validate(doc).model_dump(), ingest_job_id=job.id)
    return out, job


@router.post("", status_code=201, response_model=DocumentCreated, openapi_extra=UPLOAD_BODY,
             responses=errors(400, 413, 415))
async def upload_document(request: Request, tenant: TenantDep, filename: FilenameQuery = None) -> DocumentCreated:
    """Upload a PDF or a codebase archive. It is stored while hashed, then an ingest job extracts it."""
    settings = request.app.state.settings
    limit = settings.max_upload_bytes
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit + MULTIPART_SLACK:  # room for form framing
        raise too_large(limit)
    store = request.app.state.blob_store
    ref, part_name, kind, media_type = await stream_to_store(
        store, tenant.id, request.stream(), request.headers.get("content-type", ""), limit)
    out, job = await run_in_threadpool(_create_rows, request.app.state.sessions, tenant.id, ref,
                                       filename or _part_filename(part_name), kind, media_type)
    await run_in_threadpool(store.add_ref, ref.key, out.id)
    await run_in_threadpool(enqueue, job)
    return out


@router.get("", response_model=DocumentList, responses=errors())
def list_(session: SessionDep, tenant: TenantDep, limit: Limit = 50, offset: Offset = 0) -> DocumentList:
    docs = list_documents(session, tenant.id, limit=limit, offset=offset)
    return DocumentList(data=[DocumentPublic.model_validate(d) for d in docs])


@router.get("/{document_id}", response_model=DocumentPublic, responses=errors(404))
def get(document_id: DocumentId, session: SessionDep, tenant: TenantDep) -> DocumentPublic:
    return DocumentPublic.model_validate(get_document(session, tenant.id, document_id))


@router.delete("/{document_id}", status_code=204, response_class=Response, responses=errors(404))
def delete(document_id: DocumentId, request: Request, session: SessionDep, tenant: TenantDep) -> Response:
    """Delete the document, its jobs (running ones are cancelled first) and results, and release its blobs."""
    doc = get_document(session, tenant.id, document_id)
    for job in jobs.list_jobs(session, tenant.id, document_id=doc.id, limit=10_000):
        if job.state in (JobState.QUEUED, JobState.RUNNING):
            jobs.cancel_job(session, tenant.id, job.id)
    keys = [k for k in (doc.blob_key, doc.text_blob_key) if k]
    delete_document(session, tenant.id, document_id)
    session.commit()
    for key in keys:
        try:
            request.app.state.blob_store.release(key, document_id)
        except Exception:  # the row is gone; `sweep` collects a blob whose release failed
            log.exception("releasing blob %s of document %s", key, document_id)
    return Response(status_code=204)


def _ready(session, tenant_id: str, document_id: str):
    doc = get_document(session, tenant_id, document_id)
    if doc.status != DocumentStatus.READY:
        why = f": {doc.error}" if doc.error else "; wait for its ingest job to finish"
        raise Conflict(f"document {document_id} is {doc.status}, not ready{why}")
    return doc


@router.post("/{document_id}/summaries", status_code=202, response_model=JobPublic,
             responses=errors(400, 404, 409, 503))
def create_summary(document_id: DocumentId, body: SummaryCreate, request: Request, session: SessionDep,
                   tenant: TenantDep) -> JobPublic:
    """Queue a summary job. Its output is capped per style (brief: 512 tokens); thinking is off by default.

    429 when the tenant's daily token budget is used up or it has too many jobs queued or running."""
    doc = _ready(session, tenant.id, document_id)
    cap = get_style(body.style).max_tokens
    params = {"style": body.style, "thinking": body.thinking, "max_tokens": min(body.max_tokens or cap, cap)}
    admit_llm_job(session, tenant.id, request.app.state.settings)
    job = jobs.create_job(session, tenant.id, "summarize", document_id=doc.id, params=params)
    session.commit()
    enqueue(job)
    return job_public(session, job)


@router.post("/{document_id}/questions", status_code=202, response_model=JobPublic,
             responses=errors(400, 404, 409, 503))
def create_question(document_id: DocumentId, body: QuestionCreate, request: Request, session: SessionDep,
                    tenant: TenantDep) -> JobPublic:
    """Queue an answer job for one question about the document (429 on the same quotas as summaries)."""
    doc = _ready(session, tenant.id, document_id)
    cap = QUESTION_MAX_TOKENS
    params = {"question": body.question, "thinking": body.thinking, "max_tokens": min(body.max_tokens or cap, cap)}
    admit_llm_job(session, tenant.id, request.app.state.settings)
    job = jobs.create_job(session, tenant.id, "answer", document_id=doc.id, params=params)
    session.commit()
    enqueue(job)
    return job_public(session, job)
