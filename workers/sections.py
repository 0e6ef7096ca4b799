"""Documents longer than the window, in the summarize and answer jobs (docs/over-window.md).

`window_for` is the window a job plans for. `summarize_in_parts` runs the fallback plan of
`pipeline.prompts.budget.fit`: each part (whole sections, never cut mid-page or mid-file) is summarized in turn
through the same endpoint, its output kept in `job_parts` so a retried job resumes at the first part not done, then
one combining pass writes the summary of the whole; progress names the part, cancel aborts the part in flight, and
the result lists its parts, their spans and their usage (which adds up). Questions pick their sections with
`pipeline.prompts.sections.select_for_question` and run as one request (workers/tasks/llm.py).
"""

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import asdict

from pipeline.citations import verify_citations
from pipeline.client import Progress
from pipeline.document import ExtractedDocument
from pipeline.errors import DocumentTooLong, LeaseLost
from pipeline.prompts import Budget, combine_prompt, fit, part_document, part_prompt, prompt_tokens
from pipeline.prompts.builders import PART_MAX_TOKENS, Prompt
from pipeline.prompts.window import endpoint_window
from pipeline.records import jobs
from pipeline.records import parts as part_records
from pipeline.records.db import transaction
from workers.chat import chat
from workers.runner import JobContext
from workers.settings import WorkerSettings, inference_client, sessions

log = logging.getLogger(__name__)
PROGRESS_EVERY = 0.5  # seconds between progress writes while a part streams
USAGE_SUMS = ("prompt_tokens", "completion_tokens", "cached_tokens", "reasoning_tokens")


def window_for(cfg: WorkerSettings) -> int:
    """The window a job plans for: the endpoint's (`/v1/models` → max_model_len, asked at most once a minute per
    process) when it reports one, else WHOLEDOC_MAX_MODEL_LEN, else V4's (pipeline.prompts.window.endpoint_window).
    An endpoint that cannot say (no such field, the request failed) is not an error here."""
    return endpoint_window(inference_client(), cfg.max_model_len)


def usage_of(completion) -> dict:
    """A completion's usage as a result stores it: the token counts, its request id, attempts and finish reason."""
    usage = asdict(completion.usage) if completion.usage else {}
    return usage | {"request_id": completion.request_id, "attempts": completion.attempts,
                    "finish_reason": completion.finish_reason}


def sum_usage(usages: list[dict]) -> dict:
    """Token counts added up over several requests (a count none of them reported stays None)."""
    out: dict = {}
    for key in USAGE_SUMS:
        values = [u.get(key) for u in usages if u.get(key) is not None]
        out[key] = sum(values) if values else None
    out["attempts"] = sum(int(u.get("attempts") or 0) for u in usages)
    return out


class PartProgress:
    """The client's progress reports during part `number` of `total` (0: the combining pass) → the part's row and
    the job's counters, at most every PROGRESS_EVERY seconds per phase. The job's `progress` runs over every pass:
    each part and the combining pass take an equal share of 0.05 … 0.95."""

    def __init__(self, ctx: JobContext, number: int, total: int, max_tokens: int, request_id: str):
        self.ctx, self.number, self.total = ctx, number, total
        self.max_tokens, self.request_id = max(1, max_tokens), request_id
        self.last, self.phase = 0.0, None

    def share(self, within: float) -> float:
        slot = (self.number - 1) if self.number else self.total
        return 0.05 + 0.9 * (slot + min(max(within, 0.0), 1.0)) / (self.total + 1)

    def __call__(self, p: Progress) -> None:
        now = time.monotonic()
        if p.phase == self.phase and now - self.last < PROGRESS_EVERY:
            return
        self.phase, self.last = p.phase, now
        counters = {"tokens_generated": p.tokens_generated}
        within = 0.0
        if p.prefill_tokens_total:
            counters |= {"prefill_tokens_done": p.prefill_tokens_done, "prefill_tokens_total": p.prefill_tokens_total}
            within = 0.8 * (p.prefill_tokens_done or 0) / p.prefill_tokens_total
        if p.phase == "decode":
            within = 0.8 + 0.2 * min(1.0, p.tokens_generated / self.max_tokens)
        stage = ("generate" if p.phase == "decode" else p.phase) if self.number else "combine"
        job_fields = counters | {"stage": stage, "progress": self.share(within)}
        def write() -> None:
            with transaction(sessions()) as s:
                if self.number:
                    part_records.record_part(s, self.ctx.job.id, self.ctx.settings.owner, self.number,
                                             job_fields=job_fields, **counters)
                else:
                    jobs.record_progress(s, self.ctx.job.id, self.ctx.settings.owner, **job_fields)

        record_quietly(write)


def record_quietly(write: Callable[[], None]) -> None:
    """One progress write of a streaming request: a lost lease or a cancel (Cancelled is a LeaseLost) is ignored,
    since the lease's callback has already set the cancel event; any other error is logged, not raised, since a
    progress write is not worth failing the request for."""
    try:
        write()
    except LeaseLost:
        pass
    except Exception:
        log.warning("could not record the job's progress", exc_info=True)


def send(ctx: JobContext, cancel: threading.Event, prompt: Prompt, *, request_id: str, answer_cap: int,
         thinking: bool, on_progress) -> dict:
    """One request of the job (a part, or the combining pass) to its end; its usage. Cancel (the lease's callback)
    aborts it on the server by its id and raises Cancelled here."""
    max_tokens = prompt.output_tokens(thinking) - prompt.max_tokens + answer_cap
    completion = chat(ctx, prompt.messages, max_tokens=max_tokens, thinking=thinking,
                      thinking_budget=max_tokens - answer_cap if thinking else None, request_id=request_id,
                      cancel=cancel, on_progress=on_progress)
    return {"text": completion.content, "usage": usage_of(completion)}


def plan_in_parts(extracted: ExtractedDocument, style: str, budget: Budget):
    """The fallback plan's parts (whole sections each); raises SectionTooLong when one section alone cannot fit."""
    return fit(extracted, budget, style=style, fallback=True).parts


def summarize_in_parts(ctx: JobContext, extracted: ExtractedDocument, budget: Budget, cancel: threading.Event,
                       ) -> None:
    """Summarize every part not done yet (one after another, through the same endpoint), then combine them; store
    the result with its parts, their spans and the usage added up over every request."""
    job, cfg = ctx.job, ctx.settings
    params = job.params
    style, thinking = params.get("style", "brief"), bool(params.get("thinking"))
    plan = plan_in_parts(extracted, style, budget)
    n = len(plan)
    planned = [part_records.PlannedPart(p.span, p.sections[0].anchor, p.sections[-1].anchor, p.prompt_tokens)
               for p in plan]
    with transaction(sessions()) as s:
        rows = part_records.plan_parts(s, job.id, cfg.owner, planned)
        done = {r.number: (r.text or "", dict(r.usage or {})) for r in rows if r.state == part_records.DONE}
    if done:
        log.info("resuming a job in parts: %d of %d parts were done before", len(done), n)
    # a part's notes are capped by the summary's own cap: never longer than the answer they feed
    part_cap = min(PART_MAX_TOKENS, int(params.get("max_tokens") or PART_MAX_TOKENS))
    for number, part in enumerate(plan, 1):
        if number in done:
            continue
        request_id = f"job-{job.id}-{job.attempts}-part{number}"
        prompt = part_prompt(part_document(extracted, part.sections), index=number, parts=n, span=part.span,
                             tokenizer_path=budget.tokenizer_path)
        recorder = PartProgress(ctx, number, n, part_cap, request_id)
        with transaction(sessions()) as s:
            part_records.record_part(s, job.id, cfg.owner, number, state=part_records.RUNNING, request_id=request_id,
                                     prefill_tokens_done=0, prefill_tokens_total=part.prompt_tokens,
                                     tokens_generated=0,
                                     job_fields={"stage": "prefill", "request_id": request_id,
                                                 "prefill_tokens_done": 0, "prefill_tokens_total": part.prompt_tokens,
                                                 "tokens_generated": 0, "progress": recorder.share(0.0)})
        out = send(ctx, cancel, prompt, request_id=request_id, answer_cap=part_cap, thinking=thinking,
                   on_progress=recorder)
        with transaction(sessions()) as s:
            part_records.finish_part(s, job.id, cfg.owner, number, text=out["text"], usage=out["usage"],
                                     job_fields={"progress": recorder.share(1.0)})
        done[number] = (out["text"], out["usage"])
    _combine(ctx, extracted, budget, cancel, plan, done)


def _combine(ctx: JobContext, extracted: ExtractedDocument, budget: Budget, cancel: threading.Event, plan,
             done: dict[int, tuple[str, dict]]) -> None:
    job = ctx.job
    params = job.params
    style, thinking = params.get("style", "brief"), bool(params.get("thinking"))
    n = len(plan)
    summaries = [(part.span, done[number][0]) for number, part in enumerate(plan, 1)]
    prompt = combine_prompt(extracted, summaries, style, tokenizer_path=budget.tokenizer_path)
    answer_cap = min(int(params.get("max_tokens") or prompt.max_tokens), prompt.max_tokens)
    combine_tokens = prompt_tokens(prompt, tokenizer_path=budget.tokenizer_path)
    needed = combine_tokens + prompt.output_tokens(thinking) - prompt.max_tokens + answer_cap
    if needed > budget.window_tokens:
        raise DocumentTooLong(
            f"the {n} part summaries need {needed:,} tokens for the combining pass, over the "
            f"{budget.window_tokens:,}-token window; ask for a shorter output (max_tokens) or use a larger window",
            prompt_tokens=needed, window_tokens=budget.window_tokens)
    request_id = f"job-{job.id}-{job.attempts}-combine"
    recorder = PartProgress(ctx, 0, n, answer_cap, request_id)
    ctx.progress(stage="combine", request_id=request_id, prefill_tokens_done=0, prefill_tokens_total=combine_tokens,
                 tokens_generated=0, progress=recorder.share(0.0))
    out = send(ctx, cancel, prompt, request_id=request_id, answer_cap=answer_cap, thinking=thinking,
               on_progress=recorder)
    parts = [{"part": number, "span": part.span, "first": part.sections[0].anchor, "last": part.sections[-1].anchor,
              "usage": done[number][1]} for number, part in enumerate(plan, 1)]
    usage = sum_usage([p["usage"] for p in parts] + [out["usage"]])
    usage |= {"request_id": out["usage"].get("request_id"), "finish_reason": out["usage"].get("finish_reason"),
              "requests": n + 1}
    coverage = {"mode": "parts", "window_tokens": budget.window_tokens, "parts": parts,
                "combine": {"usage": out["usage"]}}
    note = (f"built from {n} parts ({'; '.join(p['span'] for p in parts)}): the document is over the "
            f"{budget.window_tokens:,}-token window, so each part was summarized and the summaries combined")
    citations = [asdict(c) for c in verify_citations(out["text"], extracted)]
    store_result(ctx, out["text"], citations, usage, coverage, note)


def store_result(ctx: JobContext, text: str, citations: list, usage: dict, coverage: dict | None,
                 note: str | None) -> None:
    """finish_job, with the result's coverage and a notice saying what it was made from (before any other)."""
    cfg = ctx.settings
    notice = "; ".join(x for x in (note, cfg.result_notice) if x) or None
    with transaction(sessions()) as s:
        result = jobs.finish_job(s, ctx.job.id, cfg.owner, text=text, citations=citations, usage=usage,
                                 notice=notice)
        if coverage is not None and result.coverage is None:
            result.coverage = coverage

