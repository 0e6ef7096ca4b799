"""/v1/jobs: get (with result_id when done), list, cancel, and an SSE stream of stage and progress."""

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from fastapi.sse import EventSourceResponse, ServerSentEvent
from pydantic import BaseModel, Field

from api.deps import SessionDep, TenantDep
from api.routes.common import DocumentIdQuery, JobId, job_public
from api.routes.conventions import IdempotencyDep, ListDep, operation, page_of
from api.schemas import JobList, JobPartPublic, JobPublic
from pipeline.errors import NotFound
from pipeline.logs import get_logger
from pipeline.records import jobs
from pipeline.records.models import FINAL_STATES, JobState
from workers.app import app as celery_app
from workers.app import broker_supports_broadcast

log = get_logger(__name__)
router = APIRouter(prefix="/v1/jobs", tags=["jobs"])
EVENT_FIELDS = ("state", "stage", "progress", "prefill_tokens_done", "prefill_tokens_total", "tokens_generated",
                "error", "result_id", "queue_position", "parts")


@router.get("", **operation("listJobs", "List jobs, newest first", JobList))
def list_(session: SessionDep, tenant: TenantDep, page: ListDep, state: JobState | None = None,
          document_id: DocumentIdQuery = None) -> JobList:
    found = jobs.list_jobs(session, tenant.id, state=state, document_id=document_id, limit=page.limit,
                           after=page.after)
    return page_of(JobList, found, lambda j: job_public(session, j))


@router.get("/{job_id}", **operation("getJob", "Get a job", JobPublic, codes=(404,)))
def get(job_id: JobId, session: SessionDep, tenant: TenantDep) -> JobPublic:
    return job_public(session, jobs.get_job(session, tenant.id, job_id))


@router.post("/{job_id}/cancel", **operation("cancelJob", "Cancel a job", JobPublic, codes=(404, 409)))
def cancel(job_id: JobId, session: SessionDep, tenant: TenantDep, idem: IdempotencyDep) -> JSONResponse:
    """Cancel a queued or running job: the worker stops at its next check and aborts its inference request.
    Cancelling a cancelled job answers it again; a finished one is 409."""
    if (replay := idem.replay(session, tenant.id, None)) is not None:
        return replay
    job = jobs.cancel_job(session, tenant.id, job_id)
    response = JSONResponse(job_public(session, job).model_dump(mode="json"))
    if (raced := idem.commit(session, tenant.id, None, response)) is not None:
        return raced
    # the message, if still queued, is dropped; a running task sees the cancel through its lease anyway
    if broker_supports_broadcast(celery_app.conf.broker_url):
        try:
            celery_app.control.revoke(job_id)
        except Exception:
            log.warning("could not revoke the job's task; its worker will skip it", job_id=job_id, exc_info=True)
    log.info("job cancelled", job_id=job_id)
    return response


class JobEvent(BaseModel):
    """The `data` of a `progress` event (the job's id and its changing fields), or of the final `end` event (only
    the id and the final state)."""

    id: str
    state: JobState | None
    stage: str | None = None
    progress: float | None = None
    prefill_tokens_done: int | None = None
    prefill_tokens_total: int | None = None
    tokens_generated: int | None = None
    error: str | None = None
    result_id: str | None = None
    queue_position: int | None = None
    parts: list[JobPartPublic] | None = Field(None, description="a summary run in parts: each part's progress")


def _snapshot(sessions, tenant_id: str, job_id: str) -> dict | None:
    with sessions() as s:
        try:
            job = jobs.get_job(s, tenant_id, job_id)
        except NotFound:
            return None
        return job_public(s, job).model_dump(mode="json")


def first_snapshot(job_id: JobId, request: Request, tenant: TenantDep) -> dict:
    """The job as the stream starts (404 before any event when the tenant has no such job)."""
    snap = _snapshot(request.app.state.sessions, tenant.id, job_id)
    if snap is None:
        raise NotFound(f"no job {job_id!r}")
    return snap


STREAM = operation("streamJobEvents", "Follow a job's progress (server-sent events)", codes=(404,))
STREAM["responses"][200] = {"content": {"text/event-stream": {"itemSchema": {"properties": {
    "event": {"type": "string", "enum": ["progress", "end"]}}, "required": ["event"]}}}}  # + FastAPI's


@router.get("/{job_id}/events", **STREAM, response_class=EventSourceResponse,
            response_description="`progress` events (data: JobEvent) whenever the job changes, then one `end` event; "
                                 "`: ping` comments keep an idle stream alive (at least every 15 s)")
async def events(job_id: JobId, request: Request, tenant: TenantDep,
                 first: Annotated[dict, Depends(first_snapshot)]) -> AsyncIterator[JobEvent]:
    """Server-sent events: a `progress` event whenever the job's state, stage or progress changes, then `end`."""
    sessions, poll = request.app.state.sessions, request.app.state.settings.sse_poll_seconds
    snap, last = first, None
    while snap is not None:
        view = {k: snap[k] for k in EVENT_FIELDS}
        if view != last:
            yield ServerSentEvent(event="progress", data=JobEvent(id=job_id, **view))
            last = view
        if snap["state"] in FINAL_STATES or await request.is_disconnected():
            break
        await asyncio.sleep(poll)
        snap = await run_in_threadpool(_snapshot, sessions, tenant.id, job_id)
    end = JobEvent(id=job_id, state=(snap or last or {}).get("state"))
    yield ServerSentEvent(event="end", raw_data=end.model_dump_json(exclude_unset=True))  # {"id", "state"}
