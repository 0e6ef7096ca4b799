"""`workers.summarize` and `workers.answer`: prompt the whole document, stream the completion following its
progress into the job, and store the result (with verified citations) exactly once."""

import logging
import threading
import time
from dataclasses import asdict
from datetime import timedelta

from pipeline import document_json
from pipeline.citations import verify_citations
from pipeline.client import Progress, document_prefix_tag
from pipeline.errors import Conflict, InferenceError
from pipeline.prompts import Budget, prompt_tokens, question_prompt, summary_prompt, warmup_prompt
from pipeline.prompts.sections import select_for_question
from pipeline.prompts.window import over_window
from pipeline.records.documents import warm_prefix_once
from pipeline.records.models import Document, DocumentStatus
from workers.app import ANSWER, SUMMARIZE, app
from workers.chat import chat
from workers.runner import JobContext, run_or_resend
from workers.sections import record_quietly, store_result, summarize_in_parts, usage_of, window_for
from workers.settings import blob_store, inference_client, sessions
from workers.tasks.batches import BatchItemRun

log = logging.getLogger(__name__)
# a prefix cached by DeepSeek's API outlives its last use for a while; past this a question warms it again
WARM_PREFIX_FOR = timedelta(hours=1)
PROGRESS_EVERY = 0.5  # seconds between progress writes while streaming


def _citations(text: str, doc) -> list[dict]:
    """Every citation in `text`, each with its status (verified | unverified | invalid) against the document."""
    return [asdict(c) for c in verify_citations(text, doc)]


class ProgressRecorder:
    """Turns the client's progress reports into job updates, at most every PROGRESS_EVERY seconds per phase."""

    def __init__(self, ctx: JobContext, max_tokens: int):
        self.ctx, self.max_tokens, self.last, self.phase = ctx, max(1, max_tokens), 0.0, None

    def __call__(self, p: Progress) -> None:
        now = time.monotonic()
        if p.phase == self.phase and now - self.last < PROGRESS_EVERY:
            return
        self.phase, self.last = p.phase, now
        fields = {"stage": "generate" if p.phase == "decode" else p.phase, "tokens_generated": p.tokens_generated}
        if p.prefill_tokens_total:
            fields |= {"prefill_tokens_done": p.prefill_tokens_done, "prefill_tokens_total": p.prefill_tokens_total,
                       "progress": 0.1 + 0.7 * (p.prefill_tokens_done or 0) / p.prefill_tokens_total}
        if p.phase == "decode":  # 0.8 … 0.99 over the token cap, so the bar moves on to 1.0 instead of jumping there
            fields["progress"] = 0.8 + 0.19 * min(1.0, p.tokens_generated / self.max_tokens)
        record_quietly(lambda: self.ctx.progress(**fields))


def _generate(ctx: JobContext) -> None:
    job, cfg = ctx.job, ctx.settings
    if not cfg.inference_url:
        raise InferenceError("no inference endpoint is configured: set WHOLEDOC_INFERENCE_URL (…/v1)")
    with sessions()() as s:
        doc = s.get(Document, job.document_id)
        assert doc is not None and doc.tenant_id == job.tenant_id, f"job {job.id}: document missing"
        if doc.status != DocumentStatus.READY:
            raise Conflict(f"document {doc.id} is {doc.status}, not ready")
        text_key, doc_tokens = doc.text_blob_key, doc.num_tokens
    extracted = document_json.loads(blob_store().get_bytes(text_key))
    params = job.params
    if job.kind == "answer":
        prompt = question_prompt(extracted, params["question"], max_tokens=params["max_tokens"],
                                 tokenizer_path=cfg.tokenizer_path)
    else:
        prompt = summary_prompt(extracted, params.get("style", "brief"), tokenizer_path=cfg.tokenizer_path)
    thinking = bool(params.get("thinking"))
    # the answer's cap, plus room for reasoning when thinking is on (it counts against max_tokens)
    answer_cap = min(params.get("max_tokens") or prompt.max_tokens, prompt.max_tokens)
    max_tokens = prompt.output_tokens(thinking) - prompt.max_tokens + answer_cap
    cancel = threading.Event()
    ctx.lease.on_lost(cancel.set)  # cancel or takeover → abort the inference request by its id
    coverage = note = None
    window = window_for(cfg)  # before any inference: over the window → refused, or (opt-in) run in sections
    needed = prompt_tokens(prompt, tokenizer_path=cfg.tokenizer_path) + max_tokens
    if needed > window:
        if params.get("over_window") != "sections":
            raise over_window(doc_tokens or needed - max_tokens, needed, window)
        budget = Budget(window, cfg.tokenizer_path, thinking)
        if job.kind != "answer":
            return summarize_in_parts(ctx, extracted, budget, cancel)
        selection = select_for_question(extracted, params["question"], budget, max_tokens=max_tokens)
        prompt, coverage = selection.prompt, selection.coverage() | {"window_tokens": window}
        note = (f"answered from {coverage['included_spans']}, the parts most relevant to the question that fit the "
                f"{window:,}-token window; left out: {coverage['left_out_spans'] or 'nothing'}")
    request_id = f"job-{job.id}-{job.attempts}"
    ctx.progress(stage="prefill", progress=0.1, request_id=request_id)
    if job.kind == "answer" and coverage is None and inference_client().config.flavor == "deepseek":
        _warm_prefix(job.document_id, extracted, request_id, cfg.tokenizer_path)
    completion = chat(ctx, prompt.messages, max_tokens=max_tokens, thinking=thinking,
                      thinking_budget=max_tokens - answer_cap if thinking else None, request_id=request_id,
                      cancel=cancel, on_progress=ProgressRecorder(ctx, max_tokens),
                      # its prefix snapshots go when the document does
                      prefix_tag=document_prefix_tag(job.tenant_id, job.document_id))
    store_result(ctx, completion.content, _citations(completion.content, extracted), usage_of(completion), coverage,
                 note)


def _warm_prefix(document_id: str, extracted, request_id: str, tokenizer_path: str | None) -> None:
    """DeepSeek's API caches a prefix only once a request that carries it has completed, so questions sent together
    about a new document would each pay for the whole document. One warm-up request per document (the stable
    prefix alone, 1 output token) goes first; concurrent questions wait for it (the document's row lock). A failed
    warm-up only costs the cache: the question goes on."""
    def warm() -> None:
        warm_prompt = warmup_prompt(extracted, tokenizer_path=tokenizer_path)
        inference_client().chat(warm_prompt.messages, max_tokens=1, thinking=False, request_id=f"{request_id}-warm")

    try:
        if warm_prefix_once(sessions(), document_id, warm, WARM_PREFIX_FOR):
            log.info("warmed the endpoint's cache with the document prefix", extra={"document_id": document_id})
    except Exception:  # the warm-up is an optimisation: the question itself must still run
        log.warning("warm-up request failed; asking without it", exc_info=True)


@app.task(name=SUMMARIZE, soft_time_limit=4 * 3600, time_limit=4 * 3600 + 60)
def summarize(job_id: str, tenant_id: str) -> str:
    return run_or_resend(job_id, tenant_id, "summarize", _generate)


@app.task(name=ANSWER, soft_time_limit=4 * 3600, time_limit=4 * 3600 + 60)
def answer(job_id: str, tenant_id: str) -> str:
    item = BatchItemRun(_generate)  # a batch item: 429 / 503 pause its batch; its end sends the batch's next step
    outcome = run_or_resend(job_id, tenant_id, "answer", item)
    item.ended()
    return outcome
