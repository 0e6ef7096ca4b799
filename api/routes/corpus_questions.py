"""POST /v1/corpora/{id}/questions: a question over a corpus, answered from the most relevant whole documents that fit
the window (all of them when the corpus fits), with citations to document and page (docs/corpus-questions.md).
`?dry_run=true` shows the documents that would be used, their tokens and the tokens expected from the cache."""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.admission import admit_llm_job
from api.deps import SessionDep, TenantDep
from api.routes.common import enqueue, id_path, job_public
from api.routes.conventions import IdempotencyDep, created, operation
from api.schemas import JobPublic
from api.schemas_corpus import CorpusQuestionCreate, CorpusQuestionPlan
from pipeline.document import ExtractedDocument
from pipeline.document_json import loads as load_extracted
from pipeline.estimate import Estimate, Rates, estimate_prompt
from pipeline.logs import get_logger
from pipeline.prompts.builders import QUESTION_MAX_TOKENS
from pipeline.prompts.corpus_pack import CorpusPack, budget_for, corpus_prompt, fit_exactly, nothing_fits
from pipeline.prompts.window import endpoint_window, output_tokens, window_tokens
from pipeline.records import jobs
from pipeline.records.corpora import get_corpus
from pipeline.records.models import Job, JobKind, Result
from pipeline.search import Scope
from pipeline.search.select import Selection, select_documents
from pipeline.tokens import count_tokens

log = get_logger(__name__)
router = APIRouter(prefix="/v1/corpora", tags=["corpora"])
CorpusId = id_path("corpus")
DryRunQuery = Annotated[bool, Query(description="create nothing: answer the documents that would be used, their "
                                                "tokens and the tokens expected from the prefix cache (200)")]

CREATE = operation("createCorpusQuestion", "Queue an answer to a question over a corpus (or dry-run it)", JobPublic,
                   status=202, codes=(400, 404, 409, 413))
CREATE["responses"][200] = {"model": CorpusQuestionPlan,
                            "description": "`dry_run=true`: the documents that would be used; nothing created"}
CREATE["responses"][202] |= {"model": JobPublic, "description": "the job, queued"}
CREATE.pop("response_model")


def _params(corpus_id: str, body: CorpusQuestionCreate) -> dict:
    return {"corpus_id": corpus_id, "question": body.question, "thinking": body.thinking,
            "max_tokens": min(body.max_tokens or QUESTION_MAX_TOKENS, QUESTION_MAX_TOKENS), "kinds": body.kinds,
            "uploaded_after": body.uploaded_after.isoformat() if body.uploaded_after else None,
            "uploaded_before": body.uploaded_before.isoformat() if body.uploaded_before else None}


def _scope(tenant_id: str, corpus_id: str, body: CorpusQuestionCreate) -> Scope:
    return Scope(tenant_id, corpus_id, tuple(body.kinds or ()), body.uploaded_after, body.uploaded_before)


def _window(request: Request) -> int:
    """The endpoint's window when the workers' endpoint reports one (as the job will plan), else the configured."""
    from api.routes.batches import _estimate_settings, _probe_client

    client = _probe_client() if _estimate_settings() is not None else None
    return endpoint_window(client, request.app.state.settings.max_model_len)


def _previous_documents(session: Session, tenant_id: str, corpus_id: str) -> list[str]:
    """The documents, in prompt order, of the corpus's latest answered question (what the cache may still hold)."""
    recent = session.scalars(select(Result.coverage).join(Job, Job.id == Result.job_id)
                             .where(Result.tenant_id == tenant_id, Job.kind == JobKind.CORPUS_ANSWER)
                             .order_by(Result.created_at.desc(), Result.id.desc()).limit(20))
    for coverage in recent:  # NOTE: the corpus id is inside the JSON; the latest few are read, not queried
        if coverage and coverage.get("corpus_id") == corpus_id:
            return [d["document_id"] for d in coverage.get("documents", [])]
    return []


@dataclass(frozen=True)
class Planned:
    """One question's plan: the documents it selects, fitted to the window by its exact prompt, and that prompt's
    estimate (the probe's cached tokens when the endpoint has one). What a dry run computes once per question."""

    selection: Selection
    plan: CorpusPack
    estimate: Estimate
    window: int
    output_tokens: int

    def public(self, cached_tokens: int, cache_source: str) -> CorpusQuestionPlan:
        explained = self.selection.explain(self.plan)
        return CorpusQuestionPlan(
            packing=self.plan.mode, window_tokens=self.window, budget_tokens=self.plan.budget_tokens,
            documents=explained["documents"], skipped=explained["skipped"], terms=explained["terms"],
            ignored_terms=explained["ignored_terms"], prompt_tokens=self.estimate.prompt_tokens,
            cached_tokens=cached_tokens, cache_source=cache_source, max_output_tokens=self.output_tokens)


def plan_question(request: Request, session: Session, tenant_id: str, corpus_id: str, body: CorpusQuestionCreate,
                  params: dict, *, window: int | None = None, loaded: dict | None = None) -> Planned:
    """Select, fit and estimate the question (PromptError when no document can be used). `loaded`: a dict the
    packed documents' texts are put in, by id (for counting a shared prefix without reading them again); a text
    already in it is not read again (one dict across the questions of a batch's dry run)."""
    from api.routes.batches import _estimate_settings, _probe_client

    window = window or _window(request)
    out = output_tokens(params["max_tokens"], body.thinking)
    selection = select_documents(session, _scope(tenant_id, corpus_id, body), body.question,
                                 budget_for(window, body.question, out))
    if not selection.plan.packed:
        raise nothing_fits(selection.candidates, selection.plan)
    store = request.app.state.blob_store
    loaded = {} if loaded is None else loaded

    def load(doc_id: str):
        if doc_id not in loaded:
            loaded[doc_id] = load_extracted(store.get_bytes(selection.text_keys[doc_id]))
        return loaded[doc_id]

    plan, prompt, _ = fit_exactly(selection.plan, load, body.question, window_tokens=window, output_tokens=out,
                                  max_tokens=params["max_tokens"])
    if not plan.packed:
        raise nothing_fits(selection.candidates, plan)
    cfg = _estimate_settings()
    est = estimate_prompt(prompt, client=_probe_client() if cfg else None, thinking=body.thinking,
                          cache_salt=cfg.cache_salt(tenant_id) if cfg else None)
    return Planned(selection, plan, est, window, out)


def prefix_tokens(docs: Sequence[ExtractedDocument], question: str) -> int:
    """Tokens of the prompt before the question over `docs` (in prompt order): what a later prompt sharing them
    finds in the prefix cache."""
    return count_tokens(corpus_prompt(docs, question).prefix) + 2  # BOS, <｜User｜>


def cached_tokens(planned: Planned, previous: Sequence[str],
                  shared_prefix_tokens: Callable[[tuple[str, ...]], int]) -> tuple[int, str]:
    """(cached tokens, cache source): the probe's, or, when the plan's leading documents are those of `previous`
    (the documents, prompt order, of the question sent just before), at least their prefix in whole cache blocks,
    "assumed" (the earlier question will have put it there). `shared_prefix_tokens(ids)`: prefix_tokens of those."""
    cached, source = planned.estimate.cached_tokens, planned.estimate.cache_source
    shared = []
    for doc_id, now in zip(previous, planned.plan.document_ids, strict=False):
        if doc_id != now:
            break
        shared.append(doc_id)
    if shared:
        block = Rates().cache_block_tokens
        prefix = shared_prefix_tokens(tuple(shared))
        cached, source = max(cached, min(prefix // block * block, planned.estimate.prompt_tokens)), "assumed"
    return cached, source


def _dry_run(request: Request, session: Session, tenant_id: str, corpus_id: str, body: CorpusQuestionCreate,
             params: dict) -> CorpusQuestionPlan:
    """The plan and its tokens; without a probe, the leading documents shared with the corpus's latest answered
    question count as cached."""
    loaded: dict = {}
    planned = plan_question(request, session, tenant_id, corpus_id, body, params, loaded=loaded)
    previous = [] if planned.estimate.cache_source == "probe" else _previous_documents(session, tenant_id, corpus_id)
    return planned.public(*cached_tokens(planned, previous,
                                         lambda ids: prefix_tokens([loaded[d] for d in ids], body.question)))


@router.post("/{corpus_id}/questions", **CREATE)
def create_question(corpus_id: CorpusId, body: CorpusQuestionCreate, request: Request, session: SessionDep,
                    tenant: TenantDep, idem: IdempotencyDep, dry_run: DryRunQuery = False) -> JSONResponse:
    """Queue one answer over the corpus: its documents are searched for the question's words, and the most relevant
    whole documents that fit the window go into one prompt (all of them when the corpus fits). The result maps each
    `[doc N, …]` citation to its document and lists the documents used and those left out for lack of room.

    404 for another tenant's or an unknown corpus; 422 when no document could be used (none matches and the corpus
    is over the window, or each match alone is); 429 on the same quotas as document questions."""
    request_body = body.model_dump(mode="json")
    if not dry_run and (replay := idem.replay(session, tenant.id, request_body)) is not None:
        return replay
    get_corpus(session, tenant.id, corpus_id)
    params = _params(corpus_id, body)
    if dry_run:
        return JSONResponse(_dry_run(request, session, tenant.id, corpus_id, body, params).model_dump(mode="json"))
    out = output_tokens(params["max_tokens"], body.thinking)
    window = window_tokens(None, request.app.state.settings.max_model_len)  # as document questions: no call out
    selection = select_documents(session, _scope(tenant.id, corpus_id, body), body.question,
                                 budget_for(window, body.question, out))
    if not selection.plan.packed:  # refused now rather than queued to fail; the job selects again when it runs
        raise nothing_fits(selection.candidates, selection.plan)
    admit_llm_job(session, tenant.id, request.app.state.settings)
    job = jobs.create_job(session, tenant.id, JobKind.CORPUS_ANSWER, params=params)
    response = created(job_public(session, job), f"/v1/jobs/{job.id}", 202)
    if (raced := idem.commit(session, tenant.id, request_body, response)) is not None:
        return raced
    enqueue(job)
    log.info("corpus question queued", job_id=job.id, corpus_id=corpus_id, documents=len(selection.plan.packed))
    return response
