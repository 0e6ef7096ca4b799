"""/v1/jobs: get (with result_id when done), list, cancel, and an SSE stream of stage and progress."""

import asyncio
import json
import logging

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse

from api.deps import SessionDep, TenantDep
from api.routes.common import DocumentIdQuery, JobId, Limit, Offset, errors, job_public
from api.schemas import JobList, JobPublic
from pipeline.errors import NotFound
from pipeline.records import jobs
from pipeline.records.models import FINAL_STATES, JobState
from workers.app import app as celery_app
from workers.app import broker_supports_broadcast

log = logging.getLogger(__name__)
router = APIRouter(prefix="/v1/jobs", tags=["jobs"])
EVENT_FIELDS = ("state", "stage", "progress", "prefill_tokens_done", "prefill_tokens_total", "tokens_generated",
                "error", "result_id")


@router.get("", response_model=JobList, responses=errors())
def list_(session: SessionDep, tenant: TenantDep, state: JobState | None = None, document_id: DocumentIdQuery = None,
          limit: Limit = 50, offset: Offset = 0) -> JobList:
    found = jobs.list_jobs(session, tenant.id, state=state, document_id=document_id, limit=limit, offset=offset)
    return JobList(data=[job_public(session, j) for j in found])


@router.get("/{job_id}", response_model=JobPublic, responses=errors(404))
def get(job_id: JobId, session: SessionDep, tenant: TenantDep) -> JobPublic:
    return job_public(session, jobs.get_job(session, tenant.id, job_id))


@router.post("/{job_id}/cancel", response_model=JobPublic, responses=errors(404, 409))
def cancel(job_id: JobId, session: SessionDep, tenant: TenantDep) -> JobPublic:
    """Cancel a queued or running job: the worker stops at its next check and aborts its inference request."""
    job = jobs.cancel_job(session, tenant.id, job_id)
    session.commit()
    # the message, if still queued, is dropped; a running task sees the cancel through its lease anyway
    if broker_supports_broadcast(celery_app.conf.broker_url):
        try:
            celery_app.control.revoke(job_id)
        except Exception:
            log.warning("could not revoke the task of job %s; its worker will skip it", job_id, exc_info=True)
    return job_public(session, job)


def _snapshot(sessions, tenant_id: str, job_id: str) -> dict | None:
    with sessions() as s:
        try:
            job = jobs.get_job(s, tenant_id, job_id)
        except NotFound:
            return None
        return job_public(s, job).model_dump(mode="json")


# One server-sent event as clients parse it (OpenAPI < 3.2: the schema describes each event of the stream).
SSE_EVENT = {"type": "object", "required": ["event", "data"], "properties": {
    "event": {"type": "string", "enum": ["progress", "end"]},
    "data": {"type": "string", "contentMediaType": "application/json",
             "description": f"progress: the job's id and {', '.join(EVENT_FIELDS)}; end: its id and final state"}}}


@router.get("/{job_id}/events", responses={200: {"content": {"text/event-stream": {"schema": SSE_EVENT}},
                                                 "description": "`progress` events, then one `end` event"},
                                           **errors(404)})
async def events(job_id: JobId, request: Request, tenant: TenantDep) -> StreamingResponse:
    """Server-sent events: a `progress` event whenever the job's state, stage or progress changes, then `end`."""
    sessions, poll = request.app.state.sessions, request.app.state.settings.sse_poll_seconds
    first = await run_in_threadpool(_snapshot, sessions, tenant.id, job_id)
    if first is None:
        raise NotFound(f"no job {job_id!r}")

    async def stream():
        snap, last = first, None
        while snap is not None:
            view = {k: snap[k] for k in EVENT_FIELDS}
            if view != last:
                yield f"event: progress\ndata: {json.dumps({'id': job_id, **view})}\n\n"
                last = view
            if snap["state"] in FINAL_STATES or await request.is_disconnected():
                break
            await asyncio.sleep(poll)
            snap = await run_in_threadpool(_snapshot, sessions, tenant.id, job_id)
        yield f"event: end\ndata: {json.dumps({'id': job_id, 'state': (snap or last or {}).get('state')})}\n\n"

    return StreamingResponse(stream(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
