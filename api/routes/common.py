"""Helpers the route modules share: id parameters, error responses for OpenAPI, job → JSON, and enqueueing (the
conventions every route follows are in api/routes/conventions.py)."""

from typing import Annotated

from fastapi import Path, Query
from sqlalchemy.orm import Session

from api.routes.job_parts import job_parts_public
from api.schemas import ErrorBody, JobPublic
from pipeline.logs import get_logger
from pipeline.records import jobs
from pipeline.records.models import Job, JobState
from pipeline.records.queue import queue_position
from workers.app import QUEUE_FOR_TASK, TASK_FOR_KIND, send_job

log = get_logger(__name__)

# Every object id is pipeline.records.models.new_id(): 32 lowercase hex digits. Anything else is refused (422) before
# it reaches a query, so no byte PostgreSQL cannot hold (NUL) or no stray path syntax ever does.
ID_PATTERN = "^[0-9a-f]{32}$"


def id_path(what: str):
    return Annotated[str, Path(pattern=ID_PATTERN, description=f"the {what}'s id (32 hex digits)")]


DocumentId, JobId, ResultId = id_path("document"), id_path("job"), id_path("result")
DocumentIdQuery = Annotated[str | None, Query(pattern=ID_PATTERN, description="only this document's")]


def errors(*codes: int) -> dict:
    """OpenAPI `responses` for the error statuses a route can answer (all with ErrorBody; api.routes.conventions).

    Every authenticated route may answer 422 (a path, query or body value of the wrong shape: ErrorBody, not
    FastAPI's default HTTPValidationError, which api.errors replaces) and 429 (the key's rate limit; LLM jobs also
    the tenant's quotas)."""
    text = {400: "malformed request", 401: "missing or bad API key", 404: "no such object for this tenant",
            409: "state conflict, or an Idempotency-Key sent before with a different request",
            413: "body over the size limit", 415: "unsupported file type",
            422: "invalid request", 429: "over a rate limit or quota; retry after the `Retry-After` header's seconds",
            503: "the service is at its limit of active jobs; retry after the `Retry-After` header's seconds"}
    return {code: {"model": ErrorBody, "description": text[code]} for code in sorted({401, *codes, 422, 429})}


def _queue_kinds(kind: str) -> tuple[str, ...]:
    """The job kinds that share `kind`'s queue (workers.app routes each kind's task to one queue)."""
    queue = QUEUE_FOR_TASK.get(TASK_FOR_KIND.get(kind, ""))
    return tuple(k for k, task in TASK_FOR_KIND.items() if QUEUE_FOR_TASK[task] == queue) or (kind,)


def job_public(session: Session, job: Job) -> JobPublic:
    out = JobPublic.model_validate(job)
    out.parts = job_parts_public(session, job)
    out.queue_position = queue_position(session, job, _queue_kinds(job.kind))
    if job.state == JobState.DONE:
        result = jobs.result_for_job(session, job.id)
        out.result_id = result.id if result else None
    return out


def enqueue(job: Job) -> None:
    """Send the job's task. If the broker is down the job stays queued and the reconciler re-sends it."""
    try:
        send_job(job.kind, job.id, job.tenant_id)
    except Exception:
        log.exception("could not enqueue the job; the reconciler will re-send it", job_id=job.id)
