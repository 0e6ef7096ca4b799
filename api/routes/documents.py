"""/v1/documents: upload (streamed; the same bytes again return the existing document), list, get, delete, and
create summary / question jobs."""

import re
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.orm import Session
from starlette.background import BackgroundTask

from api.admission import admit_llm_job
from api.deps import SessionDep, TenantDep
from api.prefix_cleanup import forget_document_prefixes
from api.routes.common import ID_PATTERN, DocumentId, enqueue, job_public
from api.routes.conventions import Idempotency, IdempotencyDep, ListDep, created, operation, page_of
from api.schemas import DocumentCreated, DocumentList, DocumentPublic, JobPublic, QuestionCreate, SummaryCreate
from api.upload import MULTIPART_SLACK, stream_to_store, too_large
from pipeline.errors import Conflict
from pipeline.logs import get_logger
from pipeline.prompts.builders import QUESTION_MAX_TOKENS
from pipeline.prompts.styles import get_style
from pipeline.prompts.window import output_tokens, refuse_if_over, window_tokens
from pipeline.records import corpora, jobs
from pipeline.records.documents import (
    create_document,
    delete_document,
    find_by_sha256,
    get_document,
    list_documents,
)
from pipeline.records.models import DocumentStatus
from pipeline.records.page_images import image_blobs
from pipeline.records.usage import lock_tenant

log = get_logger(__name__)
router = APIRouter(prefix="/v1/documents", tags=["documents"])

UPLOAD_BODY = {"requestBody": {"required": True, "description": "the file: multipart/form-data (field `file`) or "
               "the raw bytes; its type is sniffed from the content (PDF, zip, tar, tar.gz)",
               "content": {"multipart/form-data": {"schema": {"type": "object", "required": ["file"], "properties": {
                   "file": {"type": "string", "format": "binary"}}}},
                   "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}}
# NOTE: uploads are capped while they stream (WHOLEDOC_MAX_UPLOAD_BYTES, api.upload), not by the routers' JSON body
# limit: this route-level limit only overrides that one
UPLOAD_ROUTE_LIMIT = 2**62

FILENAME_MAX = 500  # the documents.filename column
CONTROL = re.compile(r"[\x00-\x1f\x7f]")
FilenameQuery = Annotated[str | None, Query(max_length=FILENAME_MAX, pattern=r"^[^\x00-\x1f\x7f]*$",
                                            description="the name to keep (default: the multipart part's filename)")]
ForceQuery = Annotated[bool, Query(description="make a new document even when the same bytes were uploaded before "
                                               "(and extract them again)")]
CorpusQuery = Annotated[str | None, Query(pattern=ID_PATTERN, description="also add the document to this corpus "
                                                                           "(docs/batches.md)")]


def _part_filename(name: str | None) -> str | None:
    """The multipart part's filename as a name to keep: control characters dropped, at most FILENAME_MAX long."""
    return CONTROL.sub("", name or "")[:FILENAME_MAX] or None


def _upload_rows(request: Request, tenant_id: str, idem: Idempotency, upload: dict, ref, kind: str,
                 media_type: str, force: bool, corpus_id: str | None = None) -> JSONResponse:
    """The upload's answer: a stored one (same Idempotency-Key), the existing document with these bytes (200), or a
    new document and its ingest job (201); either way a member of `corpus_id` when given."""
    store = request.app.state.blob_store
    with request.app.state.sessions() as s:
        if (replay := idem.replay(s, tenant_id, upload)) is not None:
            return replay
        if corpus_id is not None:
            corpora.get_corpus(s, tenant_id, corpus_id)  # 404 before anything is created
        lock_tenant(s, tenant_id)  # two uploads of the same bytes at once make one document
        doc = None if force else find_by_sha256(s, tenant_id, ref.sha256)
        job = jobs.ingest_job_of(s, doc.id) if doc is not None else None
        if job is not None:
            if corpus_id is not None:
                corpora.add_documents(s, tenant_id, corpus_id, [doc.id])
            out = DocumentCreated(**DocumentPublic.model_validate(doc).model_dump(), ingest_job_id=job.id)
            response = JSONResponse(out.model_dump(mode="json"), status_code=200)
            return idem.commit(s, tenant_id, upload, response) or response
        doc = create_document(s, tenant_id, kind=kind, blob_key=ref.key, sha256=ref.sha256, size_bytes=ref.size,
                              filename=upload["filename"], media_type=media_type)
        job = jobs.create_job(s, tenant_id, "ingest", document_id=doc.id)
        if corpus_id is not None:
            corpora.add_documents(s, tenant_id, corpus_id, [doc.id])
        out = DocumentCreated(**DocumentPublic.model_validate(doc).model_dump(), ingest_job_id=job.id)
        response = created(out, f"/v1/documents/{doc.id}")
        if (raced := idem.commit(s, tenant_id, upload, response)) is not None:
            return raced
    store.add_ref(ref.key, doc.id)
    enqueue(job)
    log.info("document uploaded", document_id=doc.id, job_id=job.id, kind=kind, size_bytes=ref.size)
    return response


@router.post("", **operation("createDocument", "Upload a document", DocumentCreated, status=201,
                             codes=(400, 404, 409, 413, 415),
                             also={200: "these bytes were uploaded before: that document, as it is now, and its "
                                        "ingest job (`force=true` makes a new one)"}),
             openapi_extra=UPLOAD_BODY, max_body_size=UPLOAD_ROUTE_LIMIT)
async def upload_document(request: Request, tenant: TenantDep, idem: IdempotencyDep, filename: FilenameQuery = None,
                          force: ForceQuery = False, corpus_id: CorpusQuery = None) -> JSONResponse:
    """Upload a PDF or a codebase archive. It is stored while hashed, then an ingest job extracts it. The same bytes
    uploaded again return the existing document (200) instead of a second one. With `corpus_id` the document is
    also added to that corpus (404 when the tenant has no such corpus: nothing is kept)."""
    limit = request.app.state.settings.max_upload_bytes
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit + MULTIPART_SLACK:  # room for form framing
        raise too_large(limit)
    ref, part_name, kind, media_type = await stream_to_store(
        request.app.state.blob_store, tenant.id, request.stream(), request.headers.get("content-type", ""), limit)
    upload = {"sha256": ref.sha256, "filename": filename or _part_filename(part_name)}
    return await run_in_threadpool(_upload_rows, request, tenant.id, idem, upload, ref, kind, media_type, force,
                                   corpus_id)


@router.get("", **operation("listDocuments", "List documents, newest first", DocumentList))
def list_(session: SessionDep, tenant: TenantDep, page: ListDep) -> DocumentList:
    return page_of(DocumentList, list_documents(session, tenant.id, limit=page.limit, after=page.after),
                   DocumentPublic.model_validate)


@router.get("/{document_id}", **operation("getDocument", "Get a document", DocumentPublic, codes=(404,)))
def get(document_id: DocumentId, session: SessionDep, tenant: TenantDep) -> DocumentPublic:
    return DocumentPublic.model_validate(get_document(session, tenant.id, document_id))


@router.delete("/{document_id}", **operation("deleteDocument", "Delete a document", status=204, codes=(404,)),
               response_class=Response)
def delete(document_id: DocumentId, request: Request, session: SessionDep, tenant: TenantDep) -> Response:
    """Delete the document, its jobs (running ones are cancelled first) and results, and release its blobs."""
    doc = get_document(session, tenant.id, document_id)
    for job in jobs.active_jobs_of(session, tenant.id, doc.id):
        jobs.cancel_job(session, tenant.id, job.id)
    keys = [k for k in (doc.blob_key, doc.text_blob_key) if k] + image_blobs(session, doc.id)  # + page images
    delete_document(session, tenant.id, document_id)
    session.commit()
    for key in keys:
        try:
            request.app.state.blob_store.release(key, document_id)
        except Exception:  # the row is gone; `sweep` collects a blob whose release failed
            log.exception("releasing a blob failed", blob_key=key, document_id=document_id)
    # its prefix snapshots in the inference server's store go too, after the reply (docs/prefix-store.md)
    return Response(status_code=204, background=BackgroundTask(forget_document_prefixes, tenant.id, document_id))


def _ready(session, tenant_id: str, document_id: str):
    doc = get_document(session, tenant_id, document_id)
    if doc.status != DocumentStatus.READY:
        why = f": {doc.error}" if doc.error else "; wait for its ingest job to finish"
        raise Conflict(f"document {document_id} is {doc.status}, not ready{why}")
    return doc


def _llm_job(request: Request, session: Session, tenant_id: str, idem: Idempotency, document_id: str,
             body: BaseModel, kind: str, params: dict) -> JSONResponse:
    """A summary or answer job: the stored response for its Idempotency-Key, else admit it, create it, commit it with
    its response, and only then enqueue it."""
    request_body = body.model_dump(mode="json")
    if (replay := idem.replay(session, tenant_id, request_body)) is not None:
        return replay  # before any check whose answer may have changed since (the document's state, the quotas)
    doc = _ready(session, tenant_id, document_id)
    if params.get("over_window") != "sections":  # over the window by its token count alone: refused, nothing queued
        refuse_if_over(doc.num_tokens, output_tokens(params["max_tokens"], params["thinking"]),
                       window_tokens(None, request.app.state.settings.max_model_len), kind=doc.kind, title=doc.title,
                       style=params.get("style") if kind == "summarize" else None)
    admit_llm_job(session, tenant_id, request.app.state.settings)
    job = jobs.create_job(session, tenant_id, kind, document_id=doc.id, params=params)
    response = created(job_public(session, job), f"/v1/jobs/{job.id}", 202)
    if (raced := idem.commit(session, tenant_id, request_body, response)) is not None:
        return raced
    enqueue(job)
    log.info("job queued", job_id=job.id, kind=kind, document_id=doc.id)
    return response


@router.post("/{document_id}/summaries", **operation("createSummary", "Queue a summary of the document", JobPublic,
                                                     status=202, codes=(400, 404, 409, 413, 503)))
def create_summary(document_id: DocumentId, body: SummaryCreate, request: Request, session: SessionDep,
                   tenant: TenantDep, idem: IdempotencyDep) -> JSONResponse:
    """Queue a summary job. Its output is capped per style (brief: 512 tokens); thinking is off by default.

    400 `document_too_long` (nothing queued) when the document is over the model's window, unless `over_window` is
    `sections`: then it is summarized in parts of whole sections, and the parts' summaries combined.

    429 when the tenant's daily token budget is used up or it has too many jobs queued or running."""
    cap = get_style(body.style).max_tokens
    params = {"style": body.style, "thinking": body.thinking, "max_tokens": min(body.max_tokens or cap, cap),
              "over_window": body.over_window}
    return _llm_job(request, session, tenant.id, idem, document_id, body, "summarize", params)


@router.post("/{document_id}/questions", **operation("createQuestion", "Queue an answer to a question about the "
                                                     "document", JobPublic, status=202,
                                                     codes=(400, 404, 409, 413, 503)))
def create_question(document_id: DocumentId, body: QuestionCreate, request: Request, session: SessionDep,
                    tenant: TenantDep, idem: IdempotencyDep) -> JSONResponse:
    """Queue an answer job for one question about the document (429 on the same quotas as summaries).

    400 `document_too_long` (nothing queued) when the document is over the model's window, unless `over_window` is
    `sections`: then the whole sections most relevant to the question that fit are asked about."""
    cap = QUESTION_MAX_TOKENS
    params = {"question": body.question, "thinking": body.thinking, "max_tokens": min(body.max_tokens or cap, cap),
              "over_window": body.over_window}
    return _llm_job(request, session, tenant.id, idem, document_id, body, "answer", params)
