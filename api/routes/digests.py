"""/v1/corpora/{id}/digests and /v1/digests: a corpus's digest schedules (cron in an IANA time zone, style, paused),
running one now, and its runs (docs/digests-and-webhooks.md). Beat makes the scheduled runs, one per period."""

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from api.deps import SessionDep, TenantDep
from api.routes.common import ID_PATTERN, id_path
from api.routes.conventions import IdempotencyDep, ListDep, created, operation, page_of
from api.schemas import Page, Style
from pipeline.errors import NotFound
from pipeline.logs import get_logger
from pipeline.records import digests
from pipeline.records.models import DigestRun, DigestSchedule, JobState
from workers.app import DIGEST_TICK, send_tick

log = get_logger(__name__)
router = APIRouter(prefix="/v1", tags=["digests"])
CorpusId, DigestId, RunId = id_path("corpus"), id_path("digest schedule"), id_path("digest run")
CRON = dict(min_length=9, max_length=120, description='a 5-field cron expression, e.g. "0 7 * * 1" (Mondays 07:00); '
                                                     "it may fire no more often than WHOLEDOC_DIGEST_MIN_INTERVAL")
ZONE = dict(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_+\-/]+$",
            description="an IANA time zone the cron is read in, e.g. Europe/Berlin")


class DigestCreate(BaseModel):
    cron: str = Field(**CRON)
    timezone: str = Field("UTC", **ZONE)
    style: Style = Field("brief", description="the style of each document's summary")
    paused: bool = False


class DigestUpdate(BaseModel):
    """Only the fields given change."""

    cron: str | None = Field(None, **CRON)
    timezone: str | None = Field(None, **ZONE)
    style: Style | None = None
    paused: bool | None = None


class DigestPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    corpus_id: str
    cron: str
    timezone: str
    style: Style
    paused: bool
    next_run_at: datetime = Field(description="the next fire time a run will be made for (UTC; none while paused)")
    created_at: datetime
    updated_at: datetime


class DigestList(Page[DigestPublic]):
    pass


class DigestDocument(BaseModel):
    doc: int | None = Field(None, description="its number in the digest: `[doc N, …]` citations name it")
    document_id: str
    title: str | None = None
    summary_result_id: str | None = Field(None, description="the summary in the schedule's style it was given")


class SkippedDocument(BaseModel):
    document_id: str
    reason: str = Field(description="e.g. deleted before the run")


class DigestRunPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    digest_id: str = Field(validation_alias="schedule_id")
    trigger: str = Field(description="schedule | manual")
    period_start: datetime = Field(description="the first fire time it stands for (manual: when asked)")
    period_end: datetime = Field(description="the last fire time it stands for (after downtime: the whole gap)")
    state: JobState
    stage: str | None = Field(description="summaries | digest, while not final")
    mode: str | None = Field(description="whole (the documents themselves) | summaries (theirs: they did not fit "
                                         "the window together)")
    added_after: datetime | None = Field(description="it covers documents added to the corpus after this (the "
                                                     "previous successful run's cut-off; null: all)")
    added_until: datetime
    document_ids: list[str] = Field(description="the documents it covers, as frozen when it was made")
    documents: list[DigestDocument] = Field(description="once digested: `doc N` → document id")
    skipped: list[SkippedDocument]
    job_id: str | None
    result_id: str | None = Field(description="the digest (GET /v1/results/{id}) once done")
    error: str | None
    created_at: datetime
    finished_at: datetime | None


class DigestRunList(Page[DigestRunPublic]):
    pass


def _public(schedule: DigestSchedule) -> DigestPublic:
    return DigestPublic.model_validate(schedule)


def _run_public(run: DigestRun) -> DigestRunPublic:
    return DigestRunPublic.model_validate(run)


@router.post("/corpora/{corpus_id}/digests", **operation("createDigest", "Schedule a digest of a corpus",
                                                         DigestPublic, status=201, codes=(400, 404, 409)))
def create(corpus_id: CorpusId, body: DigestCreate, request: Request, session: SessionDep, tenant: TenantDep,
           idem: IdempotencyDep) -> JSONResponse:
    """A digest schedule; 400 for a malformed cron or time zone, or one that fires more often than allowed."""
    request_body = body.model_dump(mode="json")
    if (replay := idem.replay(session, tenant.id, request_body)) is not None:
        return replay
    schedule = digests.create_schedule(session, tenant.id, corpus_id, cron=body.cron, timezone=body.timezone,
                                       style=body.style, paused=body.paused,
                                       min_interval=request.app.state.settings.digest_min_interval)
    response = created(_public(schedule), f"/v1/digests/{schedule.id}")
    if (raced := idem.commit(session, tenant.id, request_body, response)) is not None:
        return raced
    log.info("digest scheduled", digest_id=schedule.id, corpus_id=corpus_id)
    return response


@router.get("/digests", **operation("listDigests", "List digest schedules, newest first", DigestList))
def list_(session: SessionDep, tenant: TenantDep, page: ListDep,
          corpus_id: Annotated[str | None, Query(pattern=ID_PATTERN, description="only this corpus's")] = None
          ) -> DigestList:
    found = digests.list_schedules(session, tenant.id, corpus_id=corpus_id, limit=page.limit, after=page.after)
    return page_of(DigestList, found, _public)


@router.get("/digests/{digest_id}", **operation("getDigest", "Get a digest schedule", DigestPublic, codes=(404,)))
def get(digest_id: DigestId, session: SessionDep, tenant: TenantDep) -> DigestPublic:
    return _public(digests.get_schedule(session, tenant.id, digest_id))


@router.patch("/digests/{digest_id}", **operation("updateDigest", "Change or pause a digest schedule", DigestPublic,
                                                  codes=(400, 404)))
def update(digest_id: DigestId, body: DigestUpdate, request: Request, session: SessionDep,
           tenant: TenantDep) -> DigestPublic:
    changes = body.model_dump(exclude_none=True)
    schedule = digests.update_schedule(session, tenant.id, digest_id,
                                       min_interval=request.app.state.settings.digest_min_interval, **changes)
    out = _public(schedule)
    session.commit()
    return out


@router.delete("/digests/{digest_id}", **operation("deleteDigest", "Delete a digest schedule and its runs",
                                                   status=204, codes=(404,)), response_class=Response)
def delete(digest_id: DigestId, session: SessionDep, tenant: TenantDep) -> Response:
    digests.delete_schedule(session, tenant.id, digest_id)
    session.commit()
    return Response(status_code=204)


@router.post("/digests/{digest_id}/run", **operation("runDigest", "Run a digest now", DigestRunPublic, status=202,
                                                     codes=(404, 409)))
def run_now(digest_id: DigestId, session: SessionDep, tenant: TenantDep, idem: IdempotencyDep) -> JSONResponse:
    """A run now (paused or not) over the documents added since the last successful run; follow it at its
    Location."""
    if (replay := idem.replay(session, tenant.id, None)) is not None:
        return replay
    run = digests.run_now(session, tenant.id, digest_id)
    response = created(_run_public(run), f"/v1/digests/{digest_id}/runs/{run.id}", 202)
    if (raced := idem.commit(session, tenant.id, None, response)) is not None:
        return raced
    try:
        send_tick(DIGEST_TICK)  # start it now rather than at the next beat
    except Exception:
        log.warning("could not send the digest tick; beat will start the run", run_id=run.id, exc_info=True)
    log.info("digest run requested", digest_id=digest_id, run_id=run.id)
    return response


@router.get("/digests/{digest_id}/runs", **operation("listDigestRuns", "List a digest schedule's runs, newest first",
                                                     DigestRunList, codes=(404,)))
def runs(digest_id: DigestId, session: SessionDep, tenant: TenantDep, page: ListDep) -> DigestRunList:
    found = digests.list_runs(session, tenant.id, digest_id, limit=page.limit, after=page.after)
    return page_of(DigestRunList, found, _run_public)


@router.get("/digests/{digest_id}/runs/{run_id}", **operation("getDigestRun", "Get a digest run", DigestRunPublic,
                                                              codes=(404,)))
def get_run(digest_id: DigestId, run_id: RunId, session: SessionDep, tenant: TenantDep) -> DigestRunPublic:
    run = digests.get_run(session, tenant.id, run_id)
    if run.schedule_id != digest_id:
        raise NotFound(f"no digest run {run_id!r}")
    return _run_public(run)
