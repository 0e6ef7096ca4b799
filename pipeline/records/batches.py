"""Bulk Q&A batches (docs/batches.md): one item per (document, question), advanced by short dispatch steps.

An item is dispatched as an ordinary `answer` job (pipeline.records.jobs), so it runs, retries, counts against the
tenant's limits and survives a lost worker exactly like a single question; its result is copied onto the item once,
when a dispatch step sees the job final. Every dispatch step holds the batch's row lock, so two steps never race.
"""

from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import and_, func, insert, or_, select, update
from sqlalchemy.orm import Session

from pipeline.errors import Conflict, InvalidCursor, RecordError
from pipeline.records import jobs
from pipeline.records.models import (
    BATCH_FINAL_STATES,
    FINAL_STATES,
    Batch,
    BatchItem,
    BatchState,
    Document,
    DocumentStatus,
    Job,
    JobKind,
    JobState,
    new_id,
)
from pipeline.records.owned import get_owned
from pipeline.records.pages import Page, page
from pipeline.records.types import utcnow
from pipeline.records.usage import active_llm_jobs, day_start, lock_tenant, next_day_start, tokens_used_since
from pipeline.records.webhooks import emit
from pipeline.words import plural

MAX_ITEMS = 10_000
# with no per-tenant cap on active jobs, a batch still keeps at most this many items in flight
ITEMS_IN_FLIGHT_UNCAPPED = 64
BACKOFF_BASE = 5.0  # seconds of the first pause after a 429 / 503; doubled per pause in a row
BACKOFF_MAX = 600.0


MODES = ("documents", "corpus")  # corpus: one item per question, answered over the corpus (docs/batches.md)


class NothingSelected(RecordError):
    """A corpus-mode item's question could use no document of the corpus; the message says why (its item fails)."""


# corpus mode: (session, batch, question) -> the documents the question selects, ids in prompt order (or raises
# NothingSelected). The worker gives it (workers.tasks.batches), since it needs the endpoint's window.
Selector = Callable[[Session, Batch, str], Sequence[str]]


class BatchModeError(RecordError):
    """A batch's mode and its other fields disagree (corpus mode without a corpus); the message says what to give."""


class BatchTooLarge(RecordError):
    """More items (documents x questions) than one batch may have; the message names the limit."""


@dataclass(frozen=True)
class DispatchLimits:
    """What bounds a dispatch step: documents in flight per batch, and the tenant's / service's limits on LLM jobs
    (the same settings that bound single questions; 0: no cap / unlimited)."""

    docs_in_flight: int = 2
    max_active_jobs: int = 32
    max_active_jobs_total: int = 0
    daily_token_budget: int = 0
    max_attempts: int = 3


@dataclass
class Step:
    """What a dispatch step did: jobs to send (after the commit), when to look again, the state it left."""

    state: str
    send: list[tuple[str, str]] = field(default_factory=list)  # (job id, tenant id)
    wake_in: float | None = None  # seconds; None: when an item ends, or at the next sweep
    finished: bool = False
    kind: str = "answer"  # the kind of the jobs in `send` (corpus mode: corpus_answer)


# --- submission and reads -------------------------------------------------------------------------------------


def check_size(documents: int, questions: int) -> int:
    """The number of items; BatchTooLarge past MAX_ITEMS."""
    total = documents * questions
    if total > MAX_ITEMS:
        raise BatchTooLarge(f"{plural(documents, 'document', spec=',')} x {plural(questions, 'question', spec=',')} = "
                            f"{total:,} items; a batch may have at most {MAX_ITEMS:,} items: split it into several "
                            "batches")
    return total


def check_ready(documents: Sequence[Document]) -> None:
    """Conflict when there is no document, or naming the first that is not ready."""
    if not documents:
        raise Conflict("the batch has no documents: the corpus is empty; add documents to it first")
    for doc in documents:
        if doc.status != DocumentStatus.READY:
            why = f": {doc.error}" if doc.error else "; wait for its ingest job to finish"
            raise Conflict(f"document {doc.id} is {doc.status}, not ready{why}")


def create_batch(session: Session, tenant_id: str, documents: Sequence[Document], questions: Sequence[str], *,
                 thinking: bool, max_tokens: int, corpus_id: str | None = None, mode: str = "documents") -> Batch:
    """The batch and its queued items. Mode `documents`: one per (document, question), document-major so that all
    questions about one document are dispatched together; BatchTooLarge past MAX_ITEMS; Conflict naming a document
    that is not ready. Mode `corpus`: one per question over the corpus `corpus_id` (`documents` unused; dispatch
    selects each question's documents)."""
    assert mode in MODES, mode
    if mode == "corpus":
        assert corpus_id is not None
        total = len(questions)
    else:
        total = check_size(len(documents), len(questions))
        check_ready(documents)
    now = utcnow()
    batch = Batch(tenant_id=tenant_id, corpus_id=corpus_id, questions=list(questions), thinking=thinking, mode=mode,
                  max_tokens=max_tokens, state=BatchState.QUEUED, total=total, created_at=now, updated_at=now)
    session.add(batch)
    session.flush()
    item = {"tenant_id": tenant_id, "batch_id": batch.id, "state": JobState.QUEUED, "created_at": now,
            "updated_at": now}
    if mode == "corpus":
        rows = [item | {"id": new_id(), "position": q, "document_id": None, "document_name": None,
                        "question_index": q} for q in range(len(questions))]
    else:
        rows = [item | {"id": new_id(), "position": i * len(questions) + q, "document_id": doc.id,
                        "document_name": doc.filename, "question_index": q}
                for i, doc in enumerate(documents) for q in range(len(questions))]
    for start in range(0, len(rows), 1000):
        session.execute(insert(BatchItem), rows[start:start + 1000])
    return batch


def get_batch(session: Session, tenant_id: str, batch_id: str) -> Batch:
    return get_owned(session, Batch, tenant_id, batch_id)


def list_batches(session: Session, tenant_id: str, *, limit: int = 50, after: str | None = None) -> Page[Batch]:
    """A page of the tenant's batches, newest first (pipeline.records.pages)."""
    return page(session, select(Batch).where(Batch.tenant_id == tenant_id), Batch, tenant_id, limit=limit,
                after=after)


@dataclass(frozen=True)
class Totals:
    counts: dict[str, int]
    prompt_tokens: int
    cached_tokens: int
    completion_tokens: int


def totals(session: Session, batch_ids: Sequence[str]) -> dict[str, Totals]:
    """Items per state and token sums, per batch."""
    out = {b: Totals(Counter(), 0, 0, 0) for b in batch_ids}
    if not batch_ids:
        return out
    rows = session.execute(
        select(BatchItem.batch_id, BatchItem.state, func.count(), func.coalesce(func.sum(BatchItem.prompt_tokens), 0),
               func.coalesce(func.sum(BatchItem.cached_tokens), 0),
               func.coalesce(func.sum(BatchItem.completion_tokens), 0))
        .where(BatchItem.batch_id.in_(batch_ids)).group_by(BatchItem.batch_id, BatchItem.state))
    for batch_id, state, n, prompt, cached, completion in rows:
        t = out[batch_id]
        t.counts[state] = n
        out[batch_id] = Totals(t.counts, t.prompt_tokens + int(prompt), t.cached_tokens + int(cached),
                               t.completion_tokens + int(completion))
    return out


def list_items(session: Session, tenant_id: str, batch_id: str, *, limit: int = 50, after: str | None = None
               ) -> Page[BatchItem]:
    """A page of the batch's items in their order (document by document); `after` is an item id of the batch."""
    get_batch(session, tenant_id, batch_id)
    q = select(BatchItem).where(BatchItem.batch_id == batch_id)
    if after is not None:
        position = session.scalar(select(BatchItem.position).where(
            BatchItem.id == after, BatchItem.batch_id == batch_id, BatchItem.tenant_id == tenant_id))
        if position is None:
            raise InvalidCursor(f"after: the batch has no item {after!r}; list again from the first page, without "
                                "`after`")
        q = q.where(BatchItem.position > position)
    rows = list(session.scalars(q.order_by(BatchItem.position).limit(limit + 1)))
    return Page(rows[:limit], len(rows) > limit)


def iter_items(session: Session, batch_id: str, chunk: int = 500) -> Iterator[BatchItem]:
    """Every item of the batch in order, read `chunk` rows at a time (for the results files)."""
    last = -1
    while True:
        rows = list(session.scalars(select(BatchItem).where(BatchItem.batch_id == batch_id,
                                                            BatchItem.position > last)
                                    .order_by(BatchItem.position).limit(chunk)))
        yield from rows
        if len(rows) < chunk:
            return
        last = rows[-1].position


# --- final states ---------------------------------------------------------------------------------------------


def finish_batch(session: Session, batch: Batch, state: BatchState, *, now: datetime | None = None) -> Batch:
    """Put the batch in a final state (done or cancelled): the one place a batch ends."""
    assert state in BATCH_FINAL_STATES, state
    now = now or utcnow()
    batch.state, batch.finished_at, batch.updated_at = state, now, now
    batch.paused_reason = batch.resume_at = None
    session.flush()
    t = totals(session, [batch.id])[batch.id]
    # batch.completed to the tenant's webhooks (docs/digests-and-webhooks.md)
    emit(session, batch.tenant_id, "batch.completed", batch.id, {
        "batch_id": batch.id, "state": batch.state, "corpus_id": batch.corpus_id, "total": batch.total,
        "counts": dict(t.counts), "prompt_tokens": t.prompt_tokens, "cached_prompt_tokens": t.cached_tokens}, now=now)
    return batch


def cancel_batch(session: Session, tenant_id: str, batch_id: str) -> tuple[Batch, list[str]]:
    """Cancel the batch: queued items are cancelled, running ones have their jobs cancelled (the worker stops and
    aborts the request). Idempotent on a cancelled batch; a done one is Conflict. Returns the cancelled job ids."""
    batch = session.scalar(select(Batch).where(Batch.id == batch_id, Batch.tenant_id == tenant_id)
                           .with_for_update())
    if batch is None:
        get_batch(session, tenant_id, batch_id)  # NotFound
    if batch.state == BatchState.CANCELLED:
        return batch, []
    if batch.state == BatchState.DONE:
        raise Conflict(f"batch {batch_id} is already done")
    now = utcnow()
    job_ids = list(session.scalars(select(BatchItem.job_id).where(
        BatchItem.batch_id == batch_id, BatchItem.state == JobState.RUNNING, BatchItem.job_id.is_not(None))))
    cancelled = []
    for job_id in job_ids:
        try:
            jobs.cancel_job(session, tenant_id, job_id)
            cancelled.append(job_id)
        except Conflict:  # it finished meanwhile: its item keeps what it got
            pass
    _sync(session, batch, now)
    session.execute(update(BatchItem).where(BatchItem.batch_id == batch_id,
                                            BatchItem.state.in_((JobState.QUEUED, JobState.RUNNING)))
                    .values(state=JobState.CANCELLED, error="the batch was cancelled", finished_at=now,
                            updated_at=now).execution_options(synchronize_session=False))
    return finish_batch(session, batch, BatchState.CANCELLED, now=now), cancelled


# --- dispatch -------------------------------------------------------------------------------------------------


def _sync(session: Session, batch: Batch, now: datetime) -> int:
    """Copy each final job's outcome onto its running item (once: only a running item changes). Returns how many
    items became done."""
    rows = session.execute(select(BatchItem, Job).join(Job, Job.id == BatchItem.job_id, isouter=True).where(
        BatchItem.batch_id == batch.id, BatchItem.state == JobState.RUNNING,
        or_(Job.id.is_(None), Job.state.in_(FINAL_STATES)))).all()
    done = 0
    for item, job in rows:
        values: dict = {"finished_at": now, "updated_at": now}
        if job is None:  # the job went with its document
            values |= {"state": JobState.FAILED, "error": "the document was deleted"}
        elif job.state == JobState.DONE:
            result = jobs.result_for_job(session, job.id)
            usage = dict(result.usage or {}) if result else {}
            values |= {"state": JobState.DONE, "answer": result.text if result else "",
                       "citations": result.citations if result else [], "usage": usage,
                       "prompt_tokens": usage.get("prompt_tokens"), "cached_tokens": usage.get("cached_tokens"),
                       "completion_tokens": usage.get("completion_tokens"), "error": None,
                       "coverage": result.coverage if result and batch.mode == "corpus" else None}
            done += 1
        else:
            values |= {"state": job.state, "error": job.error or f"the answer job was {job.state}"}
        session.execute(update(BatchItem).where(BatchItem.id == item.id, BatchItem.state == JobState.RUNNING)
                        .values(**values).execution_options(synchronize_session=False))
    return done


def _pause(batch: Batch, reason: str, until: datetime | None, now: datetime) -> None:
    batch.state, batch.paused_reason, batch.resume_at, batch.updated_at = BatchState.PAUSED, reason, until, now


def _slots(session: Session, batch: Batch, limits: DispatchLimits, running: int) -> int:
    """Items this step may dispatch: the tenant's free job slots (else ITEMS_IN_FLIGHT_UNCAPPED per batch), and the
    service's."""
    if limits.max_active_jobs:
        free = limits.max_active_jobs - active_llm_jobs(session, batch.tenant_id)
    else:
        free = ITEMS_IN_FLIGHT_UNCAPPED - running
    if limits.max_active_jobs_total:
        free = min(free, limits.max_active_jobs_total - active_llm_jobs(session, None))
    return max(0, free)


def advance(session: Session, batch_id: str, limits: DispatchLimits, *, now: datetime | None = None,
            selector: Selector | None = None) -> Step:
    """One dispatch step: record the items whose jobs ended, end the batch when every item is final, else (unless
    paused) create jobs for the next items — every question of a document together, at most
    `limits.docs_in_flight` documents at once, within the tenant's free job slots. In corpus mode (`selector`
    required) the items are grouped by the set of documents their questions select instead (_advance_corpus). The
    caller commits, then sends `Step.send` (jobs of kind `Step.kind`)."""
    now = now or utcnow()
    batch = session.scalar(select(Batch).where(Batch.id == batch_id).with_for_update())
    if batch is None or batch.state in BATCH_FINAL_STATES:
        return Step(state=batch.state if batch else "missing")
    if _sync(session, batch, now):
        batch.backoffs = 0
    by_state = {state: n for state, n in session.execute(
        select(BatchItem.state, func.count()).where(BatchItem.batch_id == batch.id).group_by(BatchItem.state))}
    queued, running = by_state.get(JobState.QUEUED, 0), by_state.get(JobState.RUNNING, 0)
    batch.updated_at = now
    if not queued and not running:
        finish_batch(session, batch, BatchState.DONE, now=now)
        return Step(state=batch.state, finished=True)
    if batch.resume_at is not None and now < batch.resume_at:
        return Step(state=batch.state, wake_in=(batch.resume_at - now).total_seconds() if queued else None)
    if batch.state == BatchState.PAUSED and not queued:  # the pause is over; the last items are running
        batch.state, batch.paused_reason, batch.resume_at = BatchState.RUNNING, None, None
    if not queued:
        return Step(state=batch.state)
    lock_tenant(session, batch.tenant_id)  # admissions of single questions wait for this step (api.admission)
    if limits.daily_token_budget:
        used = tokens_used_since(session, batch.tenant_id, day_start(now))
        if used >= limits.daily_token_budget:
            resets = next_day_start(now)
            _pause(batch, f"the daily token budget of {limits.daily_token_budget:,} tokens is used up ({used:,} used "
                          f"today, UTC); the batch resumes after it resets at {resets:%Y-%m-%d %H:%M} UTC", resets, now)
            return Step(state=batch.state)
    if batch.state == BatchState.PAUSED:  # the pause is over (and the budget has room): dispatch may go on
        batch.state, batch.paused_reason, batch.resume_at = BatchState.RUNNING, None, None
    slots = _slots(session, batch, limits, running)
    if slots <= 0:
        return Step(state=batch.state)  # an item's end (or the sweep) brings the next step
    if batch.mode == "corpus":
        if selector is None:
            raise ValueError("a corpus-mode batch is advanced with a selector")
        return _advance_corpus(session, batch, limits, slots, selector, now)
    in_flight = set(session.scalars(select(BatchItem.document_id).where(
        BatchItem.batch_id == batch.id, BatchItem.state == JobState.RUNNING).distinct()))
    candidates = session.scalars(select(BatchItem).where(BatchItem.batch_id == batch.id,
                                                         BatchItem.state == JobState.QUEUED)
                                 .order_by(BatchItem.position).limit(slots))
    step = Step(state=BatchState.RUNNING)
    docs: dict[str | None, Document | None] = {}
    for item in candidates:
        if item.document_id not in in_flight:
            if len(in_flight) >= max(1, limits.docs_in_flight):
                break  # document-major order: every later item is about another new document
            in_flight.add(item.document_id)
        if item.document_id not in docs:
            docs[item.document_id] = session.get(Document, item.document_id) if item.document_id else None
        doc = docs[item.document_id]
        if doc is None or doc.status != DocumentStatus.READY:
            why = "the document was deleted" if doc is None else f"document {doc.id} is {doc.status}, not ready"
            item.state, item.error, item.finished_at, item.updated_at = JobState.FAILED, why, now, now
            continue
        _start_item(session, batch, item, step, limits, now, document_id=doc.id)
    batch.state, batch.paused_reason, batch.resume_at = BatchState.RUNNING, None, None
    session.flush()
    return step


def _advance_corpus(session: Session, batch: Batch, limits: DispatchLimits, slots: int, selector: Selector,
                    now: datetime) -> Step:
    """Corpus mode's dispatch: select the documents of every queued item not selected yet (its `set_key`: their ids
    in prompt order; an item whose question selects nothing fails with the reason), then create corpus-answer jobs in
    set-key order — questions over the same set back to back, so each set's prefix is computed once, and sets that
    share a leading run of documents next to each other — at most `limits.docs_in_flight` sets at once."""
    if batch.corpus_id is None:  # the corpus was deleted (SET NULL): nothing left to ask over
        session.execute(update(BatchItem).where(BatchItem.batch_id == batch.id, BatchItem.state == JobState.QUEUED)
                        .values(state=JobState.FAILED, error="the batch's corpus was deleted", finished_at=now,
                                updated_at=now).execution_options(synchronize_session=False))
        return Step(state=batch.state, wake_in=0.0)  # the next step records the rest and finishes the batch
    fresh = session.scalars(select(BatchItem).where(BatchItem.batch_id == batch.id, BatchItem.state == JobState.QUEUED,
                                                    BatchItem.set_key.is_(None)).order_by(BatchItem.position))
    for item in fresh:
        try:
            item.set_key = ",".join(selector(session, batch, batch.questions[item.question_index]))
        except RecordError as exc:
            item.state, item.error, item.finished_at, item.updated_at = JobState.FAILED, str(exc), now, now
    session.flush()
    in_flight = set(session.scalars(select(BatchItem.set_key).where(
        BatchItem.batch_id == batch.id, BatchItem.state == JobState.RUNNING).distinct()))
    candidates = session.scalars(select(BatchItem).where(BatchItem.batch_id == batch.id,
                                                         BatchItem.state == JobState.QUEUED)
                                 .order_by(BatchItem.set_key, BatchItem.position).limit(slots))
    step = Step(state=BatchState.RUNNING, kind=JobKind.CORPUS_ANSWER)
    for item in candidates:
        if item.set_key not in in_flight:
            if len(in_flight) >= max(1, limits.docs_in_flight):
                break  # set-key order: every later item is about another new set
            in_flight.add(item.set_key)
        _start_item(session, batch, item, step, limits, now, corpus_id=batch.corpus_id, kinds=None,
                    uploaded_after=None, uploaded_before=None)
    batch.state, batch.paused_reason, batch.resume_at = BatchState.RUNNING, None, None
    session.flush()
    return step


def _start_item(session: Session, batch: Batch, item: BatchItem, step: Step, limits: DispatchLimits, now: datetime,
                *, document_id: str | None = None, **params) -> None:
    """Create the item's job (of `step.kind`, asking the item's question with the batch's settings, plus `params`)
    and mark the item running; the job is sent once the step's transaction commits."""
    job = jobs.create_job(session, batch.tenant_id, step.kind, document_id=document_id,
                          max_attempts=limits.max_attempts,
                          params=params | {"question": batch.questions[item.question_index], "thinking": batch.thinking,
                                           "max_tokens": batch.max_tokens, "batch_id": batch.id,
                                           "batch_item_id": item.id})
    item.state, item.job_id, item.updated_at = JobState.RUNNING, job.id, now
    step.send.append((job.id, batch.tenant_id))


def back_off(session: Session, batch_id: str, reason: str, *, retry_after: float | None = None,
             now: datetime | None = None, cap: float = BACKOFF_MAX) -> float:
    """The inference endpoint answered 429 / 503: pause the batch's dispatch (doubling per pause in a row, at least
    the endpoint's Retry-After, at most `cap`). Returns the seconds until dispatch resumes."""
    now = now or utcnow()
    batch = session.scalar(select(Batch).where(Batch.id == batch_id).with_for_update())
    if batch is None or batch.state in BATCH_FINAL_STATES:
        return 0.0
    delay = min(cap, max(retry_after or 0.0, BACKOFF_BASE * 2 ** batch.backoffs))
    until = now + timedelta(seconds=delay)
    if batch.resume_at is None or batch.resume_at < until:
        batch.backoffs += 1
        _pause(batch, f"the inference endpoint is busy ({reason}); dispatch resumes at {until:%H:%M:%S} UTC",
               until, now)
    session.flush()
    return (batch.resume_at - now).total_seconds()


def refund_attempt(session: Session, job_id: str, owner: str) -> bool:
    """Give back the attempt a running job's claim took (a 429 / 503 is the endpoint's state, not the item's)."""
    stmt = (update(Job).where(Job.id == job_id, Job.lease_owner == owner, Job.state == JobState.RUNNING,
                              Job.attempts > 0)
            .values(attempts=Job.attempts - 1).execution_options(synchronize_session=False))
    return session.execute(stmt).rowcount == 1


def stale_batches(session: Session, *, now: datetime | None = None, older_than: float = 30.0,
                  limit: int = 500) -> list[str]:
    """Unfinished batches no step touched for `older_than` seconds, or whose pause is over: the sweep advances them
    (a lost message, a job that ended where no step followed, a budget that reset)."""
    now = now or utcnow()
    cutoff = now - timedelta(seconds=older_than)
    return list(session.scalars(select(Batch.id).where(
        Batch.state.not_in(BATCH_FINAL_STATES),
        or_(Batch.updated_at < cutoff, and_(Batch.resume_at.is_not(None), Batch.resume_at <= now)))
        .order_by(Batch.updated_at).limit(limit)))
