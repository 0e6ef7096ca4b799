"""The job lifecycle as functions over a Session: create, claim with a lease, renew, progress, finish, fail,
cancel, reconcile. The caller commits; every state change is one conditional UPDATE, so two workers racing
on the same job can never both win (PostgreSQL re-checks the WHERE on the locked row; SQLite has one writer).
"""

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from pipeline.errors import Cancelled, Conflict, LeaseLost, NotFound
from pipeline.records.models import (
    FINAL_STATES,
    Document,
    DocumentStatus,
    Job,
    JobKind,
    JobState,
    Result,
    new_id,
)
from pipeline.records.owned import get_owned
from pipeline.records.pages import Page, page
from pipeline.records.types import utcnow
from pipeline.records.webhooks import emit
from pipeline.words import plural

PROGRESS_FIELDS = {"stage", "progress", "prefill_tokens_done", "prefill_tokens_total", "tokens_generated",
                   "request_id"}


def create_job(session: Session, tenant_id: str, kind: str, *, document_id: str | None = None,
               params: dict | None = None, max_attempts: int = 3) -> Job:
    assert max_attempts >= 1, f"max_attempts={max_attempts}"
    job = Job(tenant_id=tenant_id, kind=JobKind(kind), document_id=document_id, params=params or {},
              max_attempts=max_attempts, state=JobState.QUEUED)
    session.add(job)
    session.flush()
    return job


def get_job(session: Session, tenant_id: str, job_id: str) -> Job:
    return get_owned(session, Job, tenant_id, job_id)


def list_jobs(session: Session, tenant_id: str, *, state: str | None = None, document_id: str | None = None,
              limit: int = 50, after: str | None = None) -> Page[Job]:
    """A page of the tenant's jobs, newest first (pipeline.records.pages), optionally of one state or document."""
    q = select(Job).where(Job.tenant_id == tenant_id)
    if state:
        q = q.where(Job.state == state)
    if document_id:
        q = q.where(Job.document_id == document_id)
    return page(session, q, Job, tenant_id, limit=limit, after=after)


def active_jobs_of(session: Session, tenant_id: str, document_id: str) -> list[Job]:
    """The document's queued and running jobs."""
    return list(session.scalars(select(Job).where(Job.tenant_id == tenant_id, Job.document_id == document_id,
                                                  Job.state.in_((JobState.QUEUED, JobState.RUNNING)))))


def ingest_job_of(session: Session, document_id: str) -> Job | None:
    """The document's latest ingest job."""
    return session.scalar(select(Job).where(Job.document_id == document_id, Job.kind == JobKind.INGEST)
                          .order_by(Job.created_at.desc(), Job.id.desc()).limit(1))


def result_for_job(session: Session, job_id: str) -> Result | None:
    return session.scalar(select(Result).where(Result.job_id == job_id))


def get_result(session: Session, tenant_id: str, result_id: str) -> Result:
    return get_owned(session, Result, tenant_id, result_id)


def _reload(session: Session, job_id: str) -> Job:
    job = session.get(Job, job_id, populate_existing=True)
    if job is None:
        raise NotFound(f"no job {job_id!r}")
    return job


def claim_job(session: Session, job_id: str, owner: str, lease_seconds: float, *, now: datetime | None = None
              ) -> Job | None:
    """Take the job if it is queued (or its lease expired) and has attempts left; None if someone else has it.

    Mutates: state=running, lease_owner, lease_expires_at, attempts+1, started_at (first claim).
    """
    now = now or utcnow()
    stmt = (update(Job)
            .where(Job.id == job_id, Job.attempts < Job.max_attempts, Job.cancel_requested.is_(False),
                   or_(Job.state == JobState.QUEUED,
                       (Job.state == JobState.RUNNING) & (Job.lease_expires_at < now)))
            .values(state=JobState.RUNNING, lease_owner=owner, lease_expires_at=now + timedelta(seconds=lease_seconds),
                    attempts=Job.attempts + 1, started_at=func.coalesce(Job.started_at, now), updated_at=now)
            .execution_options(synchronize_session=False))
    if session.execute(stmt).rowcount != 1:
        return None
    return _reload(session, job_id)


def _owned_update(session: Session, job_id: str, owner: str, values: dict) -> Job:
    """Apply `values` if `owner` still holds the running job's lease; else raise Cancelled / LeaseLost."""
    stmt = (update(Job).where(Job.id == job_id, Job.lease_owner == owner, Job.state == JobState.RUNNING)
            .values(**values).execution_options(synchronize_session=False))
    if session.execute(stmt).rowcount == 1:
        return _reload(session, job_id)
    job = session.get(Job, job_id, populate_existing=True)
    if job is None:
        raise Cancelled(f"job {job_id} was deleted (with its document)")
    if job.state == JobState.CANCELLED or job.cancel_requested:
        raise Cancelled(f"job {job_id} was cancelled")
    raise LeaseLost(f"job {job_id} is {job.state} with lease owner {job.lease_owner!r}, not {owner!r}")


def renew_lease(session: Session, job_id: str, owner: str, lease_seconds: float, *, now: datetime | None = None
                ) -> Job:
    """Extend the lease; raises Cancelled or LeaseLost when this worker must stop."""
    now = now or utcnow()
    return _owned_update(session, job_id, owner,
                         {"lease_expires_at": now + timedelta(seconds=lease_seconds), "updated_at": now})


def _check_progress_fields(fields: dict) -> None:
    unknown = set(fields) - PROGRESS_FIELDS
    assert not unknown, f"not progress fields: {sorted(unknown)}"


def record_progress(session: Session, job_id: str, owner: str, **fields) -> Job:
    """Set stage / progress / prefill_tokens_done / prefill_tokens_total / tokens_generated / request_id."""
    _check_progress_fields(fields)
    return _owned_update(session, job_id, owner, {**fields, "updated_at": utcnow()})


def complete_job(session: Session, job_id: str, owner: str, *, result_id: str | None = None, **final) -> Job:
    """Mark a job done (`result_id`: the Result finish_job stores with it); `final` sets progress fields to their end
    values."""
    _check_progress_fields(final)
    now = utcnow()
    job = _owned_update(session, job_id, owner, {**final, "state": JobState.DONE, "stage": None, "progress": 1.0,
                                                 "error": None, "lease_expires_at": None, "finished_at": now,
                                                 "updated_at": now})
    announce(session, job, result_id=result_id)
    return job


def announce(session: Session, job: Job, *, result_id: str | None = None) -> None:
    """job.done / job.failed to the tenant's webhooks, in the transaction that finished the job (every path to done
    or failed passes here: complete_job, fail_job, reconcile). A batch's items announce nothing one by one: the
    batch announces batch.completed."""
    if (job.params or {}).get("batch_id"):
        return
    data = {"job_id": job.id, "kind": job.kind, "state": job.state, "document_id": job.document_id}
    if job.state == JobState.DONE:
        emit(session, job.tenant_id, "job.done", job.id, data | {"result_id": result_id})
    elif job.state == JobState.FAILED:
        emit(session, job.tenant_id, "job.failed", job.id, data | {"error": job.error})


def final_counters(usage: dict | None) -> dict:
    """The progress counters a finished LLM job ends with, from its usage: every uncached prompt token prefilled and
    every completion token generated (the streamed reports are throttled, so the last one may lag behind)."""
    if not usage or "prompt_tokens" not in usage or "completion_tokens" not in usage:
        return {}
    computed = int(usage["prompt_tokens"]) - int(usage.get("cached_tokens") or 0)
    return {"prefill_tokens_done": computed, "prefill_tokens_total": computed,
            "tokens_generated": int(usage["completion_tokens"])}


def finish_job(session: Session, job_id: str, owner: str, *, text: str, citations: list | None = None,
               usage: dict | None = None, notice: str | None = None) -> Result:
    """Store the job's result and mark it done. Idempotent: a job that has a result returns that one unchanged.

    Raises Cancelled / LeaseLost when this worker lost the job and no result exists.
    """
    existing = result_for_job(session, job_id)
    if existing is not None:
        return existing
    result_id = new_id()
    job = complete_job(session, job_id, owner, result_id=result_id, **final_counters(usage))
    result = Result(id=result_id, tenant_id=job.tenant_id, job_id=job.id, document_id=job.document_id, kind=job.kind,
                    text=text, citations=citations or [], usage=usage or {}, notice=notice)
    try:
        with session.begin_nested():
            session.add(result)
    except IntegrityError:  # NOTE: only reachable if two holders raced; the unique job_id keeps the first
        existing = result_for_job(session, job_id)
        assert existing is not None, f"result insert for {job_id} failed but none exists"
        return existing
    if job.kind == JobKind.SUMMARIZE and job.document_id:  # a summary weighs in corpus search (pipeline.search)
        from pipeline.search import search_index

        search_index(session).index_summary(session, job.tenant_id, job.document_id, result_id, text)
    return result


def fail_job(session: Session, job_id: str, owner: str | None, reason: str) -> Job:
    """Fail the job for good with a reason a person can act on (`owner=None`: regardless of the lease)."""
    now = utcnow()
    values = {"state": JobState.FAILED, "error": reason, "lease_expires_at": None, "finished_at": now,
              "updated_at": now}
    if owner is None:
        failed = session.execute(update(Job).where(Job.id == job_id, Job.state.not_in(FINAL_STATES)).values(**values)
                                 .execution_options(synchronize_session=False)).rowcount
        job = _reload(session, job_id)
    else:
        failed, job = 1, _owned_update(session, job_id, owner, values)
    if failed:
        announce(session, job)
    return job


def release_for_retry(session: Session, job_id: str, owner: str, reason: str) -> bool:
    """Give the job back to the queue after a transient error. False (and the job failed) if no attempts remain."""
    job = _reload(session, job_id)
    if job.attempts >= job.max_attempts:
        fail_job(session, job_id, owner, f"{reason} (gave up after {plural(job.attempts, 'attempt')})")
        return False
    now = utcnow()
    _owned_update(session, job_id, owner, {"state": JobState.QUEUED, "error": reason, "lease_owner": None,
                                           "lease_expires_at": None, "queued_at": now, "updated_at": now})
    return True


def cancel_job(session: Session, tenant_id: str, job_id: str) -> Job:
    """Cancel a queued or running job (idempotent for a cancelled one); a finished job raises Conflict."""
    job = get_job(session, tenant_id, job_id)
    if job.state == JobState.CANCELLED:
        return job
    now = utcnow()
    stmt = (update(Job).where(Job.id == job_id, Job.state.in_((JobState.QUEUED, JobState.RUNNING)))
            .values(state=JobState.CANCELLED, cancel_requested=True, lease_expires_at=None, finished_at=now,
                    updated_at=now).execution_options(synchronize_session=False))
    if session.execute(stmt).rowcount != 1:
        job = _reload(session, job_id)
        if job.state != JobState.CANCELLED:
            raise Conflict(f"job {job_id} is already {job.state}")
    return _reload(session, job_id)


@dataclass
class ReconcileReport:
    """What a reconcile pass did: jobs to (re-)enqueue, and jobs it failed."""

    requeued: list[Job] = field(default_factory=list)  # lease expired, attempts left: send a new message
    resent: list[Job] = field(default_factory=list)  # queued too long (message lost?): send again
    failed: list[Job] = field(default_factory=list)  # lease expired with no attempts left


def reconcile(session: Session, *, now: datetime | None = None, resend_queued_after: float = 300.0,
              limit: int = 500) -> ReconcileReport:
    """Requeue running jobs whose lease expired (or fail them when out of attempts), and re-send stale queued ones.

    Rows are locked with SKIP LOCKED on PostgreSQL so two reconcilers never handle the same job.
    """
    now = now or utcnow()
    report = ReconcileReport()
    expired = (select(Job).where(Job.state == JobState.RUNNING, Job.lease_expires_at < now)
               .order_by(Job.lease_expires_at).limit(limit).with_for_update(skip_locked=True))
    for job in session.scalars(expired).all():
        if job.attempts >= job.max_attempts:
            job.state, job.finished_at = JobState.FAILED, now
            job.error = f"worker lost: lease expired on attempt {job.attempts} of {job.max_attempts}"
            job.lease_expires_at = None
            if job.kind == JobKind.INGEST and job.document_id:
                doc = session.get(Document, job.document_id)
                if doc is not None:
                    doc.status, doc.error = DocumentStatus.FAILED, job.error
            announce(session, job)
            report.failed.append(job)
        else:
            job.state, job.queued_at, job.lease_owner, job.lease_expires_at = JobState.QUEUED, now, None, None
            job.error = f"lease expired on attempt {job.attempts}; requeued"
            report.requeued.append(job)
        job.updated_at = now
    cutoff = now - timedelta(seconds=resend_queued_after)
    stale = (select(Job).where(Job.state == JobState.QUEUED, Job.queued_at < cutoff)
             .order_by(Job.queued_at).limit(limit).with_for_update(skip_locked=True))
    for job in session.scalars(stale).all():
        if job in report.requeued:
            continue
        job.queued_at = job.updated_at = now
        report.resent.append(job)
    session.flush()
    return report
