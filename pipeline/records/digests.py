"""Digest schedules and the runs they make (docs/digests-and-webhooks.md).

Exactly once per period: `schedule_due(now)` turns every schedule whose `next_run_at` has come into one run keyed by
(schedule, period start) — a unique constraint — and moves `next_run_at` past `now`. Two schedulers, or a task
delivered twice, try the same key and make one run; schedules are read with SKIP LOCKED on PostgreSQL, so they
rarely even try. After downtime, the missed fire times become one run covering the gap (`period_start` is the first
missed one, `period_end` the last). A paused schedule makes no runs; unpaused, it starts at its next fire time.

A run covers the documents added to the corpus after the previous successful run's cut-off (the first: all), frozen
when the run is made; pipeline.records.digest_runs takes it from there.
"""

from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from pipeline.digests.schedule import Cron, parse_cron
from pipeline.records.models import Corpus, CorpusDocument, DigestRun, DigestSchedule, JobState
from pipeline.records.owned import get_owned
from pipeline.records.pages import Page, page
from pipeline.records.types import utcnow

SCHEDULE, MANUAL = "schedule", "manual"


def create_schedule(session: Session, tenant_id: str, corpus_id: str, *, cron: str, timezone: str, style: str,
                    paused: bool = False, min_interval: float, now: datetime | None = None) -> DigestSchedule:
    """A schedule for the tenant's corpus (NotFound for another tenant's); InvalidSchedule for a bad cron or zone."""
    now = now or utcnow()
    get_owned(session, Corpus, tenant_id, corpus_id)
    checked = parse_cron(cron, timezone, min_interval=min_interval, now=now)
    schedule = DigestSchedule(tenant_id=tenant_id, corpus_id=corpus_id, cron=checked.expression, timezone=timezone,
                              style=style, paused=paused, next_run_at=checked.next_after(now))
    session.add(schedule)
    session.flush()
    return schedule


def get_schedule(session: Session, tenant_id: str, schedule_id: str) -> DigestSchedule:
    return get_owned(session, DigestSchedule, tenant_id, schedule_id)


def list_schedules(session: Session, tenant_id: str, *, corpus_id: str | None = None, limit: int = 50,
                   after: str | None = None) -> Page[DigestSchedule]:
    q = select(DigestSchedule).where(DigestSchedule.tenant_id == tenant_id)
    if corpus_id:
        q = q.where(DigestSchedule.corpus_id == corpus_id)
    return page(session, q, DigestSchedule, tenant_id, limit=limit, after=after)


def update_schedule(session: Session, tenant_id: str, schedule_id: str, *, min_interval: float,
                    now: datetime | None = None, **changes) -> DigestSchedule:
    """Change cron, timezone, style or paused. A new cron or zone, or unpausing, sets the next fire time from now
    (periods that passed while paused are not caught up)."""
    now = now or utcnow()
    schedule = get_schedule(session, tenant_id, schedule_id)
    assert set(changes) <= {"cron", "timezone", "style", "paused"}, changes
    cron, timezone = changes.get("cron", schedule.cron), changes.get("timezone", schedule.timezone)
    checked = parse_cron(cron, timezone, min_interval=min_interval, now=now)
    retime = (checked.expression, timezone) != (schedule.cron, schedule.timezone) or (
        schedule.paused and changes.get("paused") is False)
    schedule.cron, schedule.timezone = checked.expression, timezone
    schedule.style = changes.get("style", schedule.style)
    schedule.paused = changes.get("paused", schedule.paused)
    if retime:
        schedule.next_run_at = checked.next_after(now)
    schedule.updated_at = now
    session.flush()
    return schedule


def delete_schedule(session: Session, tenant_id: str, schedule_id: str) -> None:
    """Delete the schedule and its runs (their digests' results and jobs stay)."""
    session.delete(get_schedule(session, tenant_id, schedule_id))
    session.flush()


def _window(session: Session, schedule: DigestSchedule, now: datetime) -> tuple[datetime | None, list[str]]:
    """The previous successful run's cut-off, and the corpus's documents added after it (up to now), oldest first."""
    after = session.scalar(select(func.max(DigestRun.added_until))
                           .where(DigestRun.schedule_id == schedule.id, DigestRun.state == JobState.DONE))
    q = select(CorpusDocument.document_id).where(CorpusDocument.corpus_id == schedule.corpus_id,
                                                 CorpusDocument.added_at <= now)
    if after is not None:
        q = q.where(CorpusDocument.added_at > after)
    return after, list(session.scalars(q.order_by(CorpusDocument.added_at, CorpusDocument.document_id)))


def _new_run(session: Session, schedule: DigestSchedule, trigger: str, period_start: datetime,
             period_end: datetime, now: datetime) -> DigestRun | None:
    """Insert the run for (schedule, period_start); None when that period has one already."""
    after, document_ids = _window(session, schedule, now)
    run = DigestRun(tenant_id=schedule.tenant_id, schedule_id=schedule.id, trigger=trigger,
                    period_start=period_start, period_end=period_end, added_after=after, added_until=now,
                    document_ids=document_ids, summary_jobs={}, documents=[], skipped=[], state=JobState.QUEUED,
                    stage="summaries", created_at=now)
    try:
        with session.begin_nested():
            session.add(run)
    except IntegrityError:
        return None
    return run


def run_now(session: Session, tenant_id: str, schedule_id: str, *, now: datetime | None = None) -> DigestRun:
    """A run made on request (paused or not): its period is the moment asked."""
    now = now or utcnow()
    schedule = get_schedule(session, tenant_id, schedule_id)
    run = _new_run(session, schedule, MANUAL, now, now, now)
    assert run is not None, "two manual runs at the same microsecond"
    return run


def schedule_due(session: Session, *, now: datetime | None = None, limit: int = 100) -> list[DigestRun]:
    """The runs for every unpaused schedule due at `now` (one per schedule, covering every fire time missed up to
    now); each schedule's `next_run_at` moves to its first fire time after `now`. Safe to run concurrently."""
    now = now or utcnow()
    q = (select(DigestSchedule).where(DigestSchedule.paused.is_(False), DigestSchedule.next_run_at <= now)
         .order_by(DigestSchedule.next_run_at).limit(limit).with_for_update(skip_locked=True))
    made = []
    for schedule in session.scalars(q).all():
        cron = Cron(schedule.cron, schedule.timezone)
        last, following = cron.fires_until(schedule.next_run_at, now)
        run = _new_run(session, schedule, SCHEDULE, schedule.next_run_at, last, now)
        # conditional: a scheduler that read the schedule before another moved it on never moves it back
        session.execute(update(DigestSchedule)
                        .where(DigestSchedule.id == schedule.id, DigestSchedule.next_run_at < following)
                        .values(next_run_at=following).execution_options(synchronize_session=False))
        if run is not None:
            made.append(run)
    session.flush()
    return made


def get_run(session: Session, tenant_id: str, run_id: str) -> DigestRun:
    return get_owned(session, DigestRun, tenant_id, run_id)


def list_runs(session: Session, tenant_id: str, schedule_id: str, *, limit: int = 50, after: str | None = None
              ) -> Page[DigestRun]:
    get_schedule(session, tenant_id, schedule_id)
    q = select(DigestRun).where(DigestRun.tenant_id == tenant_id, DigestRun.schedule_id == schedule_id)
    return page(session, q, DigestRun, tenant_id, limit=limit, after=after)
