"""The parts of a job run in parts (a summary of a document over the window, docs/over-window.md), as functions over
a Session: plan them once, follow each one's progress, keep each one's output. The caller commits.

Every change goes through `jobs.record_progress` first, so a worker that lost the job's lease (cancelled, taken
over) raises Cancelled / LeaseLost before it can touch a part; a retried job finds the parts done before and runs
only the rest.
"""

from dataclasses import dataclass

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from pipeline.records import jobs
from pipeline.records.models import JobPart
from pipeline.records.types import utcnow

PENDING, RUNNING, DONE = "pending", "running", "done"


@dataclass(frozen=True)
class PlannedPart:
    """A part as planned: its span for people, its first and last section anchors, and its prompt's tokens."""

    span: str
    first: str
    last: str
    prompt_tokens: int


def parts_of(session: Session, job_id: str) -> list[JobPart]:
    """The job's parts in document order (none for a job run whole)."""
    return list(session.scalars(select(JobPart).where(JobPart.job_id == job_id).order_by(JobPart.number)))


def plan_parts(session: Session, job_id: str, owner: str, planned: list[PlannedPart]) -> list[JobPart]:
    """The job's parts for this plan: the stored ones when an earlier attempt planned the same parts (their outputs
    kept), else new pending rows (an earlier plan, e.g. under another window, is dropped)."""
    jobs.record_progress(session, job_id, owner)  # raises when this worker no longer holds the job
    stored = parts_of(session, job_id)
    if [(p.span, p.first_anchor, p.last_anchor) for p in stored] == [(p.span, p.first, p.last) for p in planned]:
        return stored
    session.execute(delete(JobPart).where(JobPart.job_id == job_id))
    rows = [JobPart(job_id=job_id, number=n, span=p.span, first_anchor=p.first, last_anchor=p.last, state=PENDING,
                    prompt_tokens=p.prompt_tokens) for n, p in enumerate(planned, 1)]
    session.add_all(rows)
    session.flush()
    return rows


def record_part(session: Session, job_id: str, owner: str, number: int, *, job_fields: dict | None = None,
                **fields) -> None:
    """Update part `number` (state, prefill / generated counters, request_id) and the job's own progress fields in
    one go; raises Cancelled / LeaseLost (and changes nothing) when this worker no longer holds the job."""
    jobs.record_progress(session, job_id, owner, **(job_fields or {}))
    session.execute(update(JobPart).where(JobPart.job_id == job_id, JobPart.number == number)
                    .values(**fields, updated_at=utcnow()).execution_options(synchronize_session=False))


def finish_part(session: Session, job_id: str, owner: str, number: int, *, text: str, usage: dict,
                job_fields: dict | None = None) -> None:
    """Keep part `number`'s output and mark it done (a retry of the job will not run it again)."""
    counters = {"tokens_generated": usage.get("completion_tokens")}
    if usage.get("prompt_tokens") is not None:
        computed = int(usage["prompt_tokens"]) - int(usage.get("cached_tokens") or 0)
        counters |= {"prefill_tokens_done": computed, "prefill_tokens_total": computed}
    record_part(session, job_id, owner, number, job_fields=job_fields, state=DONE, text=text, usage=usage,
                request_id=None, **counters)
