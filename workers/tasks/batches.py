"""Bulk Q&A batches in the worker (docs/batches.md): `workers.batches.advance` runs one short dispatch step,
`workers.batches.sweep` (beat) gives stalled or resumable batches one, and `BatchItemRun` wraps the answer task's body
so a batch item's end brings the next step and a 429 / 503 pauses its batch instead of spending the item's attempts.

No task here waits: a step records what ended, sends the next jobs and returns; a pause is a `resume_at` on the batch
plus a step re-sent with a countdown below the broker's visibility timeout (and the sweep, should that be lost).
"""

import logging

from pipeline.errors import EndpointUnavailable, PromptError, RateLimited
from pipeline.prompts.corpus_pack import budget_for, nothing_fits
from pipeline.prompts.window import output_tokens
from pipeline.records import batches
from pipeline.records.batches import BACKOFF_MAX, DispatchLimits, NothingSelected
from pipeline.records.db import transaction
from pipeline.search import Scope
from pipeline.search.select import select_documents
from workers.app import BATCH_ADVANCE, BATCH_SWEEP, app, send_batch, send_job
from workers.runner import JobContext
from workers.settings import WorkerSettings, sessions, settings

log = logging.getLogger(__name__)
BUSY_STATUSES = (503,)  # besides 429 (RateLimited): the endpoint says it is overloaded, not that the item is bad


def limits(cfg: WorkerSettings) -> DispatchLimits:
    return DispatchLimits(docs_in_flight=cfg.batch_docs_in_flight, max_active_jobs=cfg.max_active_jobs,
                          max_active_jobs_total=cfg.max_active_jobs_total, daily_token_budget=cfg.daily_token_budget)


def longest_countdown(cfg: WorkerSettings) -> float:
    """A re-sent step's countdown stays well inside Redis's visibility timeout (a countdown past it is redelivered)."""
    return min(BACKOFF_MAX, cfg.visibility_timeout / 2)


class CorpusSelector:
    """Corpus mode's selector for `batches.advance`: the documents a question selects over the batch's corpus, with
    the window and budget the corpus-answer job will plan with (workers.tasks.corpus), so items grouped by it send
    the prefixes their jobs will send. The endpoint's window is asked once per step."""

    def __init__(self, cfg: WorkerSettings):
        self.cfg, self._window = cfg, None

    def __call__(self, session, batch, question: str) -> list[str]:
        if batch.corpus_id is None:
            raise NothingSelected("the batch's corpus was deleted before the question was dispatched")
        if self._window is None:
            from workers.sections import window_for

            self._window = window_for(self.cfg)
        out = output_tokens(batch.max_tokens, batch.thinking)
        try:
            budget = budget_for(self._window, question, out, tokenizer_path=self.cfg.tokenizer_path)
        except PromptError as exc:
            raise NothingSelected(str(exc)) from None
        selection = select_documents(session, Scope(batch.tenant_id, batch.corpus_id), question, budget)
        if not selection.plan.packed:
            raise NothingSelected(str(nothing_fits(selection.candidates, selection.plan)))
        return selection.plan.document_ids


@app.task(name=BATCH_ADVANCE, soft_time_limit=60, time_limit=90)
def advance(batch_id: str) -> str:
    """One dispatch step: commit what it decided, then send the jobs it created (a lost send is re-sent by the
    reconciler, like any queued job's)."""
    cfg = settings()
    with transaction(sessions()) as s:
        step = batches.advance(s, batch_id, limits(cfg), selector=CorpusSelector(cfg))
    for job_id, tenant_id in step.send:
        send_job(step.kind, job_id, tenant_id)
    if step.wake_in is not None:
        send_batch(batch_id, countdown=min(step.wake_in, longest_countdown(cfg)))
    if step.send or step.finished:
        log.info("batch %s: %s, %d items dispatched", batch_id, step.state, len(step.send))
    return step.state


@app.task(name=BATCH_SWEEP, soft_time_limit=60, time_limit=90)
def sweep() -> int:
    """Send a step to every unfinished batch no step touched for a reconcile period, or whose pause is over."""
    cfg = settings()
    with sessions()() as s:
        due = batches.stale_batches(s, older_than=cfg.reconcile_seconds)
    for batch_id in due:
        send_batch(batch_id)
    return len(due)


class BatchItemRun:
    """The answer task's body for every answer job; for a batch item's job it also (1) turns a 429 / 503 from the
    endpoint into a pause of the batch's dispatch, giving the attempt back, and (2) sends the batch's next step once
    the job has ended (`ended`)."""

    def __init__(self, body):
        self.body, self.batch_id = body, None

    def __call__(self, ctx: JobContext) -> None:
        self.batch_id = (ctx.job.params or {}).get("batch_id")
        if self.batch_id is None:
            return self.body(ctx)
        try:
            return self.body(ctx)
        except (RateLimited, EndpointUnavailable) as exc:
            status = 429 if isinstance(exc, RateLimited) else getattr(exc, "status", None)
            if status != 429 and status not in BUSY_STATUSES:
                raise
            with transaction(sessions()) as s:
                delay = batches.back_off(s, self.batch_id, f"HTTP {status}",
                                         retry_after=getattr(exc, "retry_after", None),
                                         cap=longest_countdown(ctx.settings))
                batches.refund_attempt(s, ctx.job.id, ctx.settings.owner)
            log.warning("batch %s paused for %.0f s: the endpoint answered %s", self.batch_id, delay, status)
            # transient: the runner requeues the job and re-sends it no sooner than the pause
            raise RateLimited(f"the inference endpoint answered {status}; the batch is paused", retry_after=delay
                              ) from exc

    def ended(self) -> None:
        if self.batch_id is None:
            return
        try:
            send_batch(self.batch_id)
        except Exception:  # the sweep gives the batch its step
            log.warning("could not send batch %s its next step", self.batch_id, exc_info=True)
