"""Scheduled corpus digests (docs/digests-and-webhooks.md).

- `workers.digests.tick` (beat, every WHOLEDOC_DIGEST_TICK_SECONDS): due schedules become runs, exactly one per
  period (pipeline.records.digests), and active runs advance one step (pipeline.records.digest_runs): summaries
  reused or queued, then the digest job. Every step is a short task; waiting is the next tick, never a countdown.
- `workers.digest`: the digest job: the covered documents whole when they fit the window together, else their
  summaries, in the multi-document prompt; citations checked across the documents; the result and the run's
  `doc N` → document id map stored together, and digest.completed announced in the same transaction.
"""

from datetime import datetime

from pipeline.digests.plan import SUMMARIES, digest_citations, plan_digest, summary_document
from pipeline.document_json import loads
from pipeline.errors import Conflict, InferenceError
from pipeline.logs import get_logger
from pipeline.prompts import Budget
from pipeline.records import digest_runs, digests, jobs
from pipeline.records.db import transaction
from pipeline.records.models import DigestRun, Document, DocumentStatus, Job, Result
from pipeline.records.types import utcnow
from workers.app import DIGEST, DIGEST_TICK, app, send_job
from workers.chat import chat
from workers.runner import JobContext, run_or_resend
from workers.sections import usage_of, window_for
from workers.settings import blob_store, sessions
from workers.tasks.llm import ProgressRecorder

log = get_logger(__name__)


def tick_at(now: datetime) -> dict:
    """One scheduler pass at `now` (tests inject it): make due runs, advance active ones, send their jobs."""
    with transaction(sessions()) as s:
        made = digests.schedule_due(s, now=now)
        counts = {"runs_made": len(made)}
    with transaction(sessions()) as s:
        advanced = digest_runs.advance(s, now=now)
        to_send = [(j.kind, j.id, j.tenant_id) for j in advanced.to_send]
        counts |= {"jobs_sent": len(to_send), "runs_finished": len(advanced.finished)}
    for kind, job_id, tenant_id in to_send:
        send_job(kind, job_id, tenant_id)
    if made or to_send:
        log.info("digest tick", **counts)
    return counts


@app.task(name=DIGEST_TICK, soft_time_limit=60, time_limit=90)
def tick(now: str | None = None) -> dict:
    """Safe to run concurrently and to repeat: runs are keyed by period, steps are conditional."""
    return tick_at(datetime.fromisoformat(now) if now else utcnow())


def _digest(ctx: JobContext) -> None:
    job, cfg = ctx.job, ctx.settings
    if not cfg.inference_url:
        raise InferenceError("no inference endpoint is configured: set WHOLEDOC_INFERENCE_URL (…/v1)")
    with sessions()() as s:
        run = s.get(DigestRun, job.params["run_id"])
        if run is None or run.tenant_id != job.tenant_id:
            raise Conflict(f"digest run {job.params['run_id']} is gone (its schedule or corpus was deleted)")
        covered, skipped = [], list(run.skipped)
        for entry in run.documents:
            doc = s.get(Document, entry["document_id"])
            if doc is None or doc.status != DocumentStatus.READY:
                skipped.append({"document_id": entry["document_id"], "reason": "deleted before the run"})
                continue
            summary_id = entry.get("summary_result_id")
            summary = s.get(Result, summary_id) if summary_id else None
            covered.append((doc.id, doc.text_blob_key, doc.title or doc.filename, summary.text if summary else "",
                            summary_id))
        run_id = run.id
    if not covered:
        with transaction(sessions()) as s:
            jobs.finish_job(s, job.id, cfg.owner, text="No documents to digest: every one was deleted before the run.")
            result = jobs.result_for_job(s, job.id)
            digest_runs.complete_run(s, run_id, result_id=result.id, documents=[], skipped=skipped, mode=None)
        return
    store = blob_store()
    originals = [loads(store.get_bytes(key)) for _, key, _, _, _ in covered]
    summaries = [summary_document(doc, text, title) for doc, (_, _, title, text, _) in zip(originals, covered)]
    ctx.progress(stage="count", progress=0.05)
    plan = plan_digest(originals, summaries, Budget(window_tokens=window_for(cfg), tokenizer_path=cfg.tokenizer_path))
    request_id = f"job-{job.id}-{job.attempts}"
    ctx.progress(stage="prefill", progress=0.1, request_id=request_id, prefill_tokens_total=plan.prompt_tokens)
    max_tokens = plan.prompt.output_tokens(False)
    completion = chat(ctx, plan.prompt.messages, max_tokens=max_tokens, thinking=False, request_id=request_id,
                      on_progress=ProgressRecorder(ctx, max_tokens))
    document_ids = [doc_id for doc_id, _, _, _, _ in covered]
    documents = [{"doc": i, "document_id": doc_id, "title": title, "summary_result_id": summary_id}
                 for i, (doc_id, _, title, _, summary_id) in enumerate(covered, 1)]
    usage = usage_of(completion) | {"digest_mode": plan.mode}
    notice = cfg.result_notice
    if plan.mode == SUMMARIES:
        notice = " ".join(filter(None, [notice, "The documents did not fit the window together: this digest was "
                                                "written from their summaries."]))
    with transaction(sessions()) as s:
        result = jobs.finish_job(s, job.id, cfg.owner, text=completion.content,
                                 citations=digest_citations(completion.content, originals, document_ids),
                                 usage=usage, notice=notice)
        digest_runs.complete_run(s, run_id, result_id=result.id, documents=documents, skipped=skipped,
                                 mode=plan.mode)


def _run_failed(session, job: Job, reason: str) -> None:
    run = digest_runs.run_of_job(session, job)
    if run is not None:
        digest_runs.fail_run(session, run, reason)


@app.task(name=DIGEST, soft_time_limit=4 * 3600, time_limit=4 * 3600 + 60)
def digest(job_id: str, tenant_id: str) -> str:
    return run_or_resend(job_id, tenant_id, "digest", _digest, on_failed=_run_failed)
