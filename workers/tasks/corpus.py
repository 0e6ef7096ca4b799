"""`workers.corpus_answer`: a question over a corpus (docs/corpus-questions.md). Search the corpus, pack the most
relevant whole documents into the window (all of them when they fit), ask once over `documents_block`, verify each
`[doc N, …]` citation against document N, and store one result that maps every `doc N` to its document id and lists
the documents used and those left out for lack of room."""

import logging
from dataclasses import asdict
from datetime import datetime

from pipeline import document_json
from pipeline.citations import verify_citations
from pipeline.errors import InferenceError, NotFound
from pipeline.prompts.corpus_pack import budget_for, fit_exactly, nothing_fits
from pipeline.prompts.window import output_tokens
from pipeline.records.corpora import get_corpus
from pipeline.search import Scope
from pipeline.search.select import select_documents
from workers.app import CORPUS_ANSWER, app
from workers.chat import chat
from workers.runner import JobContext, run_or_resend
from workers.sections import store_result, usage_of, window_for
from workers.settings import blob_store, sessions
from workers.tasks.batches import BatchItemRun
from workers.tasks.llm import ProgressRecorder

log = logging.getLogger(__name__)


def scope_of(tenant_id: str, params: dict) -> Scope:
    """The job's search scope: the tenant, the corpus, and the filters it was asked with (ISO dates)."""
    def when(key: str) -> datetime | None:
        return datetime.fromisoformat(params[key]) if params.get(key) else None

    return Scope(tenant_id, params["corpus_id"], tuple(params.get("kinds") or ()), when("uploaded_after"),
                 when("uploaded_before"))


def cited_documents(citations: list, document_ids: list[str]) -> list[dict]:
    """Each citation as stored, with the document id its `doc N` names (None when there is no document N)."""
    out = []
    for c in citations:
        n = c.doc
        out.append(asdict(c) | {"document_id": document_ids[n - 1] if n and 1 <= n <= len(document_ids) else None})
    return out


def _answer_corpus(ctx: JobContext) -> None:
    job, cfg = ctx.job, ctx.settings
    if not cfg.inference_url:
        raise InferenceError("no inference endpoint is configured: set WHOLEDOC_INFERENCE_URL (…/v1)")
    params = job.params
    question, thinking = params["question"], bool(params.get("thinking"))
    answer_cap = params["max_tokens"]
    max_tokens = output_tokens(answer_cap, thinking)
    window = window_for(cfg)
    ctx.progress(stage="select", progress=0.02)
    with sessions()() as s:
        try:
            get_corpus(s, job.tenant_id, params["corpus_id"])
        except NotFound:
            raise NotFound(f"corpus {params['corpus_id']} was deleted before the question ran") from None
        budget = budget_for(window, question, max_tokens, tokenizer_path=cfg.tokenizer_path)
        selection = select_documents(s, scope_of(job.tenant_id, params), question, budget)
    if not selection.plan.packed:
        raise nothing_fits(selection.candidates, selection.plan)
    store = blob_store()
    plan, prompt, docs = fit_exactly(
        selection.plan, lambda doc_id: document_json.loads(store.get_bytes(selection.text_keys[doc_id])), question,
        window_tokens=window, output_tokens=max_tokens, max_tokens=answer_cap, tokenizer_path=cfg.tokenizer_path)
    if not plan.packed:
        raise nothing_fits(selection.candidates, plan)
    request_id = f"job-{job.id}-{job.attempts}"
    ctx.progress(stage="prefill", progress=0.1, request_id=request_id)
    completion = chat(ctx, prompt.messages, max_tokens=max_tokens, thinking=thinking,
                      thinking_budget=max_tokens - answer_cap if thinking else None, request_id=request_id,
                      on_progress=ProgressRecorder(ctx, max_tokens))
    citations = cited_documents(verify_citations(completion.content, docs), plan.document_ids)
    coverage = {"mode": "corpus", "corpus_id": params["corpus_id"]} | selection.explain(plan)
    left_out = f"; left out for lack of room: {len(plan.skipped)} relevant" if plan.skipped else ""
    note = (f"answered from {len(plan.packed)} of the corpus's {len(selection.candidates)} documents "
            f"({plan.mode}){left_out}")
    store_result(ctx, completion.content, citations, usage_of(completion), coverage, note)


@app.task(name=CORPUS_ANSWER, soft_time_limit=4 * 3600, time_limit=4 * 3600 + 60)
def corpus_answer(job_id: str, tenant_id: str) -> str:
    item = BatchItemRun(_answer_corpus)  # a corpus-mode batch item (docs/batches.md): as the answer task's
    outcome = run_or_resend(job_id, tenant_id, "corpus_answer", item)
    item.ended()
    return outcome
