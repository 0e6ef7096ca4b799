"""A digest run's way to its digest (docs/digests-and-webhooks.md), in short steps that beat repeats (`advance`)
until the digest job is made; the job (workers.tasks.digests) then writes the digest and `complete_run` records it.

1. summaries: each covered document gets a summary in the schedule's style — an existing one is reused, a queued
   or running one is waited for, else a summarize job is made. A document deleted (or failed at ingest) since the
   run was made is skipped and listed with the reason; one still being ingested is waited for.
2. digest: one `digest` job over the documents that remain.

Every step is idempotent and stored on the run row, so a lost worker or a second scheduler repeats nothing.
"""

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from pipeline.prompts.builders import DIGEST_MAX_TOKENS
from pipeline.prompts.styles import get_style
from pipeline.records import jobs
from pipeline.records.models import (
    FINAL_STATES,
    DigestRun,
    DigestSchedule,
    Document,
    DocumentStatus,
    Job,
    JobKind,
    JobState,
    Result,
)
from pipeline.records.types import utcnow
from pipeline.records.webhooks import emit

ACTIVE = (JobState.QUEUED, JobState.RUNNING)


@dataclass
class Advanced:
    """What a pass over active runs did: jobs to send once committed, runs that moved on."""

    to_send: list[Job] = field(default_factory=list)
    finished: list[str] = field(default_factory=list)
    digests: list[str] = field(default_factory=list)


def _summary_of(session: Session, document_id: str, style: str) -> tuple[str | None, Job | None]:
    """(the result id of the newest done summary in `style`, else the newest queued/running such job)."""
    candidates = session.scalars(select(Job).where(Job.document_id == document_id, Job.kind == JobKind.SUMMARIZE,
                                                   Job.state.in_((JobState.DONE, *ACTIVE)))
                                 .order_by(Job.created_at.desc(), Job.id.desc()))
    active = None
    for job in candidates:
        if (job.params or {}).get("style", "brief") != style:
            continue
        if job.state == JobState.DONE:
            result = jobs.result_for_job(session, job.id)
            if result is not None:
                return result.id, None
        elif active is None:
            active = job
    return None, active


def _summaries(session: Session, run: DigestRun, style: str, out: Advanced) -> bool:
    """Step 1 for one run; True once every covered document has its summary (or is skipped)."""
    waiting = False
    summary_jobs, documents, skipped = dict(run.summary_jobs), [], list(run.skipped)
    skipped_ids = {s["document_id"] for s in skipped}
    for document_id in run.document_ids:
        if document_id in skipped_ids:
            continue
        doc = session.get(Document, document_id)
        reason = None
        if doc is None:
            reason = "deleted before the run"
        elif doc.status == DocumentStatus.FAILED:
            reason = f"its extraction failed: {doc.error}"
        elif doc.status != DocumentStatus.READY:
            waiting = True
            continue
        if reason is None and document_id in summary_jobs:
            job = session.get(Job, summary_jobs[document_id])
            if job is None or job.state in (JobState.FAILED, JobState.CANCELLED):
                reason = f"its summary failed: {job.error if job else 'the job is gone'}"
            elif job.state != JobState.DONE:
                waiting = True
                continue
            else:
                result = jobs.result_for_job(session, job.id)
                documents.append({"document_id": document_id, "summary_result_id": result.id if result else None})
                continue
        if reason is not None:
            skipped.append({"document_id": document_id, "reason": reason})
            skipped_ids.add(document_id)
            continue
        result_id, active = _summary_of(session, document_id, style)
        if result_id is not None:
            documents.append({"document_id": document_id, "summary_result_id": result_id})
            continue
        if active is None:
            active = jobs.create_job(session, run.tenant_id, JobKind.SUMMARIZE, document_id=document_id,
                                     params={"style": style, "thinking": False,
                                             "max_tokens": get_style(style).max_tokens})
            out.to_send.append(active)
        summary_jobs[document_id] = active.id
        waiting = True
    run.summary_jobs, run.skipped = summary_jobs, skipped
    if waiting:
        return False
    run.documents = documents
    return True


def advance(session: Session, *, now: datetime | None = None, limit: int = 100, only: list[str] | None = None
            ) -> Advanced:
    """One pass over the queued and running runs (`only`: these); SKIP LOCKED, so concurrent passes share them out."""
    now = now or utcnow()
    out = Advanced()
    q = select(DigestRun).where(DigestRun.state.in_(ACTIVE))
    if only is not None:
        q = q.where(DigestRun.id.in_(only))
    q = q.order_by(DigestRun.created_at).limit(limit).with_for_update(skip_locked=True)
    for run in session.scalars(q).all():
        if run.job_id is not None or run.stage == "digest":
            job = session.get(Job, run.job_id) if run.job_id else None
            if job is None or job.state in (JobState.FAILED, JobState.CANCELLED):
                fail_run(session, run, f"the digest job {job.state if job else 'is gone'}"
                         + (f": {job.error}" if job and job.error else ""), now=now)
                out.finished.append(run.id)
            continue
        schedule = session.get(DigestSchedule, run.schedule_id)
        if not _summaries(session, run, schedule.style, out):
            continue
        if not run.documents:
            _finish(session, run, None, None, now)
            out.finished.append(run.id)
            continue
        job = jobs.create_job(session, run.tenant_id, JobKind.DIGEST,
                              params={"run_id": run.id, "style": schedule.style, "thinking": False,
                                      "max_tokens": DIGEST_MAX_TOKENS})
        run.job_id, run.state, run.stage = job.id, JobState.RUNNING, "digest"
        out.to_send.append(job)
        out.digests.append(run.id)
    session.flush()
    return out


def _finish(session: Session, run: DigestRun, result_id: str | None, mode: str | None, now: datetime) -> None:
    run.state, run.stage, run.result_id, run.mode, run.finished_at = JobState.DONE, None, result_id, mode, now
    schedule = session.get(DigestSchedule, run.schedule_id)
    emit(session, run.tenant_id, "digest.completed", run.id, {
        "digest_id": run.schedule_id, "run_id": run.id, "corpus_id": schedule.corpus_id if schedule else None,
        "result_id": result_id, "period_start": run.period_start.isoformat(), "period_end": run.period_end.isoformat(),
        "documents": run.documents, "skipped": run.skipped}, now=now)


def complete_run(session: Session, run_id: str, *, result_id: str, documents: list[dict], skipped: list[dict],
                 mode: str | None, now: datetime | None = None) -> DigestRun:
    """Record the digest (in the transaction that stores its result) and announce digest.completed; idempotent.
    The result's `coverage` says which document each `doc N` is, what was skipped, and what the prompt held."""
    run = session.get(DigestRun, run_id, with_for_update=True, populate_existing=True)
    if run is None or run.state in FINAL_STATES:
        return run
    run.documents, run.skipped = documents, skipped
    result = session.get(Result, result_id)
    if result is not None and result.coverage is None and mode is not None:
        result.coverage = {"mode": "digest", "run_id": run_id, "prompt": mode, "documents": documents,
                           "skipped": skipped}
    _finish(session, run, result_id, mode, now or utcnow())
    session.flush()
    return run


def fail_run(session: Session, run: DigestRun, reason: str, *, now: datetime | None = None) -> None:
    if run.state in FINAL_STATES:
        return
    run.state, run.stage, run.error, run.finished_at = JobState.FAILED, None, reason, now or utcnow()
    session.flush()


def run_of_job(session: Session, job: Job) -> DigestRun | None:
    run_id = (job.params or {}).get("run_id")
    return session.get(DigestRun, run_id) if run_id else None
