"""Helpers the route modules share: error responses for OpenAPI, job → JSON, and enqueueing."""

import logging

from sqlalchemy.orm import Session

from api.schemas import ErrorBody, JobPublic
from pipeline.records import jobs
from pipeline.records.models import Job, JobState
from workers.app import send_job

log = logging.getLogger(__name__)


def errors(*codes: int) -> dict:
    """OpenAPI `responses` for the error statuses a route can answer (all with ErrorBody).

    Every authenticated route may answer 429 (the key's rate limit; LLM jobs also the tenant's quotas)."""
    text = {401: "missing or bad API key", 404: "no such object for this tenant", 409: "state conflict",
            413: "upload over the size limit", 415: "unsupported file type", 422: "invalid request",
            429: "over a rate limit or quota; retry after the `Retry-After` header's seconds"}
    return {code: {"model": ErrorBody, "description": text[code]} for code in (401, *codes, 429)}


def job_public(session: Session, job: Job) -> JobPublic:
    out = JobPublic.model_validate(job)
    if job.state == JobState.DONE:
        result = jobs.result_for_job(session, job.id)
        out.result_id = result.id if result else None
    return out


def enqueue(job: Job) -> None:
    """Send the job's task. If the broker is down the job stays queued and the reconciler re-sends it."""
    try:
        send_job(job.kind, job.id, job.tenant_id)
    except Exception:
        log.exception("could not enqueue job %s; the reconciler will re-send it", job.id)
