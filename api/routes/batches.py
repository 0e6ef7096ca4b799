"""/v1/batches: bulk Q&A — every question about every document, one item each (docs/batches.md). Submit (or dry-run),
list, get with counts and token sums, page through items, download the results as CSV or JSON lines, cancel."""

import csv
import io
import json
from collections.abc import Iterator
from functools import cache
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse
from sqlalchemy.orm import Session

from api.deps import SessionDep, TenantDep
from api.routes.common import id_path
from api.routes.conventions import IdempotencyDep, ListDep, created, operation, page_of
from api.schemas_batches import (
    BatchCounts,
    BatchCreate,
    BatchEstimate,
    BatchItemList,
    BatchItemPublic,
    BatchList,
    BatchPublic,
    DocumentEstimate,
    QuestionEstimate,
)
from pipeline.batch_estimate import estimate_items
from pipeline.document_json import loads as load_extracted
from pipeline.errors import NotFound, PromptError
from pipeline.estimate import estimate
from pipeline.logs import get_logger
from pipeline.prompts.builders import QUESTION_MAX_TOKENS
from pipeline.prompts.window import output_tokens
from pipeline.records import batches, corpora
from pipeline.records.batches import Totals
from pipeline.records.corpora import get_corpus
from pipeline.records.models import Batch, BatchItem, Document
from workers.app import WorkerSettings, send_batch

log = get_logger(__name__)
router = APIRouter(prefix="/v1/batches", tags=["batches"])
BatchId = id_path("batch")
DryRunQuery = Annotated[bool, Query(description="create nothing: answer the items, prompt tokens and tokens expected "
                                                "from the prefix cache (200, a BatchEstimate)")]
RESULT_FIELDS = ("item_id", "document_id", "document_name", "question_index", "question", "state", "answer",
                 "citations", "prompt_tokens", "cached_tokens", "completion_tokens", "error", "documents_used",
                 "documents_skipped")


class CsvStream(StreamingResponse):
    media_type = "text/csv"


class JsonLinesStream(StreamingResponse):
    media_type = "application/x-ndjson"


def batch_public(batch: Batch, t: Totals) -> BatchPublic:
    counts = BatchCounts(**{state: n for state, n in t.counts.items()}, total=batch.total)
    return BatchPublic(id=batch.id, state=batch.state, paused_reason=batch.paused_reason, resume_at=batch.resume_at,
                       corpus_id=batch.corpus_id, mode=batch.mode, questions=batch.questions,
                       thinking=batch.thinking,
                       max_tokens=batch.max_tokens, counts=counts, prompt_tokens=t.prompt_tokens,
                       cached_prompt_tokens=t.cached_tokens, completion_tokens=t.completion_tokens,
                       created_at=batch.created_at, finished_at=batch.finished_at)


def _public(session: Session, batch: Batch) -> BatchPublic:
    return batch_public(batch, batches.totals(session, [batch.id])[batch.id])


def item_public(item: BatchItem, questions: list[str]) -> BatchItemPublic:
    return BatchItemPublic(id=item.id, position=item.position, document_id=item.document_id,
                           document_name=item.document_name, question_index=item.question_index,
                           question=questions[item.question_index], state=item.state, job_id=item.job_id,
                           answer=item.answer, citations=item.citations, usage=item.usage, error=item.error,
                           coverage=item.coverage, finished_at=item.finished_at)


def _documents(session: Session, tenant_id: str, body: BatchCreate) -> list[Document]:
    """The batch's documents in order: the ids given (404 naming one the tenant has not), or the corpus's now."""
    if body.corpus_id is not None:
        return corpora.all_documents(session, tenant_id, body.corpus_id)
    wanted = list(dict.fromkeys(body.document_ids or ()))
    found = {d.id: d for d in session.query(Document).filter(Document.tenant_id == tenant_id,
                                                             Document.id.in_(wanted))}
    missing = [d for d in wanted if d not in found]
    if missing:
        raise NotFound(f"no document {missing[0]!r}")
    return [found[d] for d in wanted]


@cache
def _estimate_settings() -> WorkerSettings | None:
    """The inference endpoint the workers use (its cache probe), read from the same environment; None without one."""
    try:
        cfg = WorkerSettings.load()
    except Exception:  # a worker-only variable malformed here: estimate without a probe
        log.warning("worker settings unreadable; dry runs estimate without the cache probe", exc_info=True)
        return None
    return cfg if cfg.inference_url else None


@cache
def _probe_client():
    from pipeline.client import ClientConfig, InferenceClient

    cfg = _estimate_settings()
    key = cfg.inference_api_key.get_secret_value() if cfg.inference_api_key else None
    return InferenceClient(ClientConfig(base_url=cfg.inference_url, model=cfg.model, api_key=key, max_retries=0,
                                        control_timeout=10.0, flavor=cfg.inference_flavor))


def _dry_run(request: Request, tenant_id: str, docs: list[Document], body: BatchCreate, max_tokens: int
             ) -> BatchEstimate:
    store = request.app.state.blob_store
    extracted = [(d.id, load_extracted(store.get_bytes(d.text_blob_key))) for d in docs]
    cfg = _estimate_settings()
    client = _probe_client() if cfg is not None else None
    found = estimate_items(extracted, body.questions, max_tokens=max_tokens, thinking=body.thinking, client=client,
                           cache_salt=cfg.cache_salt(tenant_id) if cfg else None,
                           tokenizer_path=cfg.tokenizer_path if cfg else None)
    ests = [f.estimate for f in found]
    sources = {e.cache_source for e in ests}
    return BatchEstimate(
        items=len(docs) * len(body.questions), documents=len(docs), prompt_tokens=sum(e.prompt_tokens for e in ests),
        cached_tokens=sum(e.cached_tokens for e in ests), tokens_to_prefill=sum(e.tokens_to_prefill for e in ests),
        max_output_tokens=sum(e.max_output_tokens for e in ests),
        cache_source="probe" if "probe" in sources else ("assumed" if "assumed" in sources else "cold"),
        seconds=round(sum(e.seconds for e in ests), 3),
        per_document=[DocumentEstimate(document_id=f.document_id, items=len(body.questions),
                                       prompt_tokens=f.estimate.prompt_tokens, cached_tokens=f.estimate.cached_tokens)
                      for f in found])


def _check_mode(body: BatchCreate) -> None:
    """Corpus mode needs a corpus and takes no document ids (400 saying so)."""
    if body.mode != "corpus":
        return
    if body.corpus_id is None:
        raise batches.BatchModeError('mode "corpus" answers each question over a corpus: give corpus_id (the '
                                     "corpus's id from GET /v1/corpora)")
    if body.document_ids is not None:
        raise batches.BatchModeError('mode "corpus" takes corpus_id, not document_ids: put the documents in a corpus '
                                     '(POST /v1/corpora/{id}/documents), or use mode "documents"')


def _dry_run_corpus(request: Request, session: Session, tenant_id: str, body: BatchCreate, max_tokens: int
                    ) -> BatchEstimate:
    """Corpus mode's dry run: each question's plan (the documents it selects, its tokens), in the order dispatch
    would send them (by set key), each counting as cached the leading documents it shares with the one before."""
    from api.routes.corpus_questions import _window, cached_tokens, plan_question, prefix_tokens
    from api.schemas_corpus import CorpusQuestionCreate

    window, keyed, loaded = _window(request), [], {}  # loaded: each packed document's text, read once for all
    for i, q in enumerate(body.questions):  # each question planned once: its set, then the cache in dispatch order
        ask = CorpusQuestionCreate(question=q, thinking=body.thinking, max_tokens=max_tokens)
        try:
            planned = plan_question(request, session, tenant_id, body.corpus_id, ask, {"max_tokens": max_tokens},
                                    window=window, loaded=loaded)
            keyed.append((",".join(planned.plan.document_ids), i, q, planned, None))
        except PromptError as exc:
            keyed.append(("", i, q, None, str(exc)))
    prefixes = {}

    def shared_prefix(question: str):
        def tokens(ids: tuple[str, ...]) -> int:  # the same leading documents recur along a run of one set
            if ids not in prefixes:
                prefixes[ids] = prefix_tokens([loaded[d] for d in ids], question)
            return prefixes[ids]
        return tokens

    per_question, previous, sources = [], [], set()
    for key, i, q, planned, error in sorted(keyed, key=lambda k: (k[0], k[1])):
        if planned is None:
            per_question.append(QuestionEstimate(question_index=i, question=q, set_key=None, document_ids=[],
                                                 skipped_document_ids=[], packing=None, prompt_tokens=0,
                                                 cached_tokens=0, error=error))
            continue
        plan = planned.public(*cached_tokens(planned, previous, shared_prefix(q)))
        previous = list(planned.plan.document_ids)
        sources.add(plan.cache_source)
        per_question.append(QuestionEstimate(
            question_index=i, question=q, set_key=key, document_ids=[d.document_id for d in plan.documents],
            skipped_document_ids=[d.document_id for d in plan.skipped], packing=plan.packing,
            prompt_tokens=plan.prompt_tokens, cached_tokens=plan.cached_tokens))
    answered = [p for p in per_question if p.error is None]
    prompt = sum(p.prompt_tokens for p in answered)
    cached = sum(p.cached_tokens for p in answered)
    out_cap = output_tokens(max_tokens, body.thinking) * len(answered)
    est = estimate(prompt, out_cap, cached_tokens=cached)
    return BatchEstimate(items=len(body.questions), documents=len({d for p in answered for d in p.document_ids}),
                         prompt_tokens=prompt, cached_tokens=cached, tokens_to_prefill=prompt - cached,
                         max_output_tokens=out_cap, seconds=round(est.seconds, 3),
                         cache_source=next((c for c in ("probe", "assumed") if c in sources), "cold"),
                         per_document=[], mode="corpus", per_question=per_question)


CREATE = operation("createBatch", "Queue a batch of questions over documents (or dry-run it)", BatchPublic,
                   status=202, codes=(400, 404, 409, 413))
CREATE["responses"][200] = {"model": BatchEstimate, "description": "`dry_run=true`: the estimate; nothing created"}
CREATE["responses"][202] |= {"model": BatchPublic, "description": "the batch, queued"}
CREATE.pop("response_model")


@router.post("", **CREATE)
def create(body: BatchCreate, request: Request, session: SessionDep, tenant: TenantDep, idem: IdempotencyDep,
           dry_run: DryRunQuery = False) -> JSONResponse:
    """Ask every question about every document: one item per (document, question), at most 10,000 (400 naming the
    limit). The documents are `document_ids` or the corpus's documents now; all must be ready (409). Items run as
    answer jobs under the tenant's limits, all questions about one document together.

    `"mode": "corpus"` (with `corpus_id`; 400 without) asks each question once over the corpus instead, one item per
    question, answered from its most relevant whole documents (as `POST /v1/corpora/{id}/questions`); questions that
    select the same documents run back to back."""
    request_body = body.model_dump(mode="json")
    if not dry_run and (replay := idem.replay(session, tenant.id, request_body)) is not None:
        return replay
    _check_mode(body)
    max_tokens = min(body.max_tokens or QUESTION_MAX_TOKENS, QUESTION_MAX_TOKENS)
    if body.mode == "corpus":
        get_corpus(session, tenant.id, body.corpus_id)
        docs = []
        if dry_run:
            est = _dry_run_corpus(request, session, tenant.id, body, max_tokens)
            return JSONResponse(est.model_dump(mode="json"))
    else:
        docs = _documents(session, tenant.id, body)
        batches.check_size(len(docs), len(body.questions))
    if dry_run:
        batches.check_ready(docs)
        return JSONResponse(_dry_run(request, tenant.id, docs, body, max_tokens).model_dump(mode="json"))
    batch = batches.create_batch(session, tenant.id, docs, body.questions, thinking=body.thinking,
                                 max_tokens=max_tokens, corpus_id=body.corpus_id, mode=body.mode)
    response = created(_public(session, batch), f"/v1/batches/{batch.id}", 202)
    if (raced := idem.commit(session, tenant.id, request_body, response)) is not None:
        return raced
    try:
        send_batch(batch.id)
    except Exception:  # the sweep (beat) gives it its first step
        log.exception("could not send the batch's first step; the sweep will", batch_id=batch.id)
    log.info("batch queued", batch_id=batch.id, items=batch.total)
    return response


@router.get("", **operation("listBatches", "List batches, newest first", BatchList))
def list_(session: SessionDep, tenant: TenantDep, page: ListDep) -> BatchList:
    found = batches.list_batches(session, tenant.id, limit=page.limit, after=page.after)
    t = batches.totals(session, [b.id for b in found.rows])
    return page_of(BatchList, found, lambda b: batch_public(b, t[b.id]))


@router.get("/{batch_id}", **operation("getBatch", "Get a batch: its state, items per state and tokens", BatchPublic,
                                       codes=(404,)))
def get(batch_id: BatchId, session: SessionDep, tenant: TenantDep) -> BatchPublic:
    return _public(session, batches.get_batch(session, tenant.id, batch_id))


@router.get("/{batch_id}/items", **operation("listBatchItems", "List a batch's items in order (document by "
                                                               "document)", BatchItemList, codes=(404,)))
def list_items(batch_id: BatchId, session: SessionDep, tenant: TenantDep, page: ListDep) -> BatchItemList:
    batch = batches.get_batch(session, tenant.id, batch_id)
    found = batches.list_items(session, tenant.id, batch_id, limit=page.limit, after=page.after)
    return page_of(BatchItemList, found, lambda i: item_public(i, batch.questions))


def _result_rows(request: Request, batch_id: str, questions: list[str]) -> Iterator[dict]:
    with request.app.state.sessions() as s:
        for item in batches.iter_items(s, batch_id):
            yield {"item_id": item.id, "document_id": item.document_id, "document_name": item.document_name,
                   "question_index": item.question_index, "question": questions[item.question_index],
                   "state": item.state, "answer": item.answer, "citations": item.citations, "usage": item.usage,
                   "prompt_tokens": item.prompt_tokens, "cached_tokens": item.cached_tokens,
                   "completion_tokens": item.completion_tokens, "error": item.error, "coverage": item.coverage,
                   "documents_used": _used(item.coverage), "documents_skipped": _skipped(item.coverage)}


def _used(coverage: dict | None) -> list[str] | None:
    """A corpus-mode item's documents in `doc N` order (doc 1 first)."""
    return [d["document_id"] for d in coverage.get("documents", [])] if coverage else None


def _skipped(coverage: dict | None) -> list[str] | None:
    return [d["document_id"] for d in coverage.get("skipped", [])] if coverage else None


def _csv(rows: Iterator[dict]) -> Iterator[str]:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=RESULT_FIELDS, extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow(row | {k: json.dumps(row[k]) if row[k] is not None else ""
                               for k in ("citations", "documents_used", "documents_skipped")})
        if out.tell() > 64 * 1024:
            yield out.getvalue()
            out.seek(0)
            out.truncate()
    yield out.getvalue()


def _jsonl(rows: Iterator[dict]) -> Iterator[str]:
    for row in rows:
        yield json.dumps(row, ensure_ascii=False) + "\n"


def _download(kind: str) -> dict:
    media = {"csv": "text/csv", "jsonl": "application/x-ndjson"}[kind]
    what = {"csv": "CSV with a header row; citations as a JSON array",
            "jsonl": "one JSON object per line, with citations and usage"}[kind]
    out = operation(f"getBatchResults{kind.capitalize()}", f"Download a batch's results as {kind.upper()}",
                    codes=(404,))
    out["responses"][200] = {"description": f"one row per item in order ({what}): document id and name, question, "
                                            "state, answer, citations, usage, error",
                             "content": {media: {"schema": {"type": "string"}}}}
    return out


@router.get("/{batch_id}/results.csv", **_download("csv"), response_class=CsvStream)
def results_csv(batch_id: BatchId, request: Request, session: SessionDep, tenant: TenantDep) -> CsvStream:
    batch = batches.get_batch(session, tenant.id, batch_id)
    return CsvStream(_csv(_result_rows(request, batch.id, batch.questions)),
                     headers={"Content-Disposition": f'attachment; filename="batch-{batch.id}.csv"'})


@router.get("/{batch_id}/results.jsonl", **_download("jsonl"), response_class=JsonLinesStream)
def results_jsonl(batch_id: BatchId, request: Request, session: SessionDep, tenant: TenantDep) -> JsonLinesStream:
    batch = batches.get_batch(session, tenant.id, batch_id)
    return JsonLinesStream(_jsonl(_result_rows(request, batch.id, batch.questions)),
                           headers={"Content-Disposition": f'attachment; filename="batch-{batch.id}.jsonl"'})


@router.post("/{batch_id}/cancel", **operation("cancelBatch", "Cancel a batch", BatchPublic, codes=(404, 409)))
def cancel(batch_id: BatchId, session: SessionDep, tenant: TenantDep, idem: IdempotencyDep) -> JSONResponse:
    """Cancel the batch: items not yet answered are cancelled (running ones stop and abort their inference request);
    answered items keep their answers. Cancelling a cancelled batch answers it again; a done one is 409."""
    if (replay := idem.replay(session, tenant.id, None)) is not None:
        return replay
    batch, job_ids = batches.cancel_batch(session, tenant.id, batch_id)
    response = JSONResponse(_public(session, batch).model_dump(mode="json"))
    if (raced := idem.commit(session, tenant.id, None, response)) is not None:
        return raced
    log.info("batch cancelled", batch_id=batch_id, jobs_cancelled=len(job_ids))
    return response
