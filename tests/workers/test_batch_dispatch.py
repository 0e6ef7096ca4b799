"""Batch dispatch (pipeline.records.batches, docs/batches.md) on PostgreSQL: document-grouped steps within the tenant's
job cap and `docs_in_flight`, the daily token budget pausing a batch with its reason, the 429 / 503 back-off, cancel;
and on a real worker against a fault server: a 429 pauses the batch and spends no item attempt."""

from datetime import timedelta

import pytest

from pipeline.records import batches, jobs
from pipeline.records.batches import DispatchLimits
from pipeline.records.db import transaction
from pipeline.records.documents import create_document, mark_document_ready
from pipeline.records.models import Batch, BatchItem, Job, new_id
from pipeline.records.tenants import create_tenant
from pipeline.records.types import utcnow
from tests.api.helpers import make_pdf
from tests.helpers.services import start_worker, stop
from tests.helpers.wait import wait_until
from tests.pipeline.faultserver import Reply
from tests.workers.helpers import env, new_document, send, wait_job

pytestmark = pytest.mark.services


def _tenant_docs(records, n: int) -> tuple[str, list]:
    with transaction(records) as s:
        tenant = create_tenant(s, f"t-{new_id()}")
        docs = []
        for i in range(n):
            doc = create_document(s, tenant.id, kind="pdf", blob_key=f"k{i}", sha256=new_id() * 2, size_bytes=1,
                                  filename=f"d{i}.pdf")
            mark_document_ready(s, doc.id, text_blob_key=f"t{i}", num_sections=1, num_tokens=10)
            docs.append(doc)
        s.expunge_all()
    return tenant.id, docs


def _batch(records, tenant_id, docs, questions=("a?", "b?", "c?")) -> str:
    with transaction(records) as s:
        return batches.create_batch(s, tenant_id, [s.merge(d) for d in docs], list(questions), thinking=False,
                                    max_tokens=8).id


def _step(records, batch_id, limits, now=None):
    with transaction(records) as s:
        return batches.advance(s, batch_id, limits, now=now)


def _item_docs(records, job_ids) -> list[str]:
    with records() as s:
        return [s.get(Job, j).document_id for j, _ in job_ids]


def _finish(records, job_ids, usage=None) -> None:
    with transaction(records) as s:
        for job_id, _ in job_ids:
            jobs.claim_job(s, job_id, "w", 60)
            jobs.finish_job(s, job_id, "w", text="answer [p. 1]", citations=[{"anchor": "1", "status": "verified"}],
                            usage=usage or {"prompt_tokens": 300, "cached_tokens": 256, "completion_tokens": 2})


def test_steps_keep_documents_together_within_the_job_cap(records):
    tenant_id, docs = _tenant_docs(records, 3)
    batch_id = _batch(records, tenant_id, docs)
    limits = DispatchLimits(docs_in_flight=2, max_active_jobs=4)
    first = _step(records, batch_id, limits)
    # all of the first document's questions, then the second document's, up to the tenant's 4 free job slots
    assert _item_docs(records, first.send) == [docs[0].id] * 3 + [docs[1].id]
    assert _step(records, batch_id, limits).send == []  # the cap is full: nothing more until an item ends
    _finish(records, first.send[:3])
    second = _step(records, batch_id, limits)
    assert _item_docs(records, second.send) == [docs[1].id] * 2 + [docs[2].id]  # two documents in flight
    with records() as s:
        items = s.query(BatchItem).filter_by(batch_id=batch_id).order_by(BatchItem.position).all()
        assert [i.state for i in items[:3]] == ["done"] * 3 and items[0].answer == "answer [p. 1]"
        assert (items[0].prompt_tokens, items[0].cached_tokens, items[0].citations[0]["status"]) == (300, 256,
                                                                                                      "verified")
        assert s.get(Job, items[0].job_id).params["batch_item_id"] == items[0].id
    _finish(records, first.send[3:] + second.send)
    third = _step(records, batch_id, limits)
    assert _item_docs(records, third.send) == [docs[2].id] * 2
    _finish(records, third.send)
    last = _step(records, batch_id, limits)
    assert last.finished and last.state == "done"
    with records() as s:
        t = batches.totals(s, [batch_id])[batch_id]
    assert (t.counts["done"], t.prompt_tokens, t.cached_tokens) == (9, 2700, 2304)
    again = _step(records, batch_id, limits)  # a step on a finished batch changes nothing
    assert again.send == [] and not again.finished


def test_one_document_in_flight_and_no_cap(records):
    tenant_id, docs = _tenant_docs(records, 2)
    batch_id = _batch(records, tenant_id, docs)
    step = _step(records, batch_id, DispatchLimits(docs_in_flight=1, max_active_jobs=0))
    assert _item_docs(records, step.send) == [docs[0].id] * 3


def test_the_daily_token_budget_pauses_the_batch_with_its_reason(records):
    tenant_id, docs = _tenant_docs(records, 1)
    batch_id = _batch(records, tenant_id, docs)
    limits = DispatchLimits(max_active_jobs=1, daily_token_budget=100)
    first = _step(records, batch_id, limits)
    _finish(records, first.send, usage={"prompt_tokens": 500, "cached_tokens": 0, "completion_tokens": 8})
    paused = _step(records, batch_id, limits)
    assert paused.send == [] and paused.state == "paused"
    with records() as s:
        batch = s.get(Batch, batch_id)
        assert "daily token budget of 100 tokens is used up" in batch.paused_reason
        assert batch.resume_at is not None and batch.resume_at > utcnow()
        assert s.query(BatchItem).filter_by(batch_id=batch_id, state="failed").count() == 0  # paused, not failed
    tomorrow = _step(records, batch_id, limits, now=batch.resume_at)  # the budget counts from midnight UTC
    assert len(tomorrow.send) == 1 and tomorrow.state == "running"


def test_back_off_doubles_and_refunds_the_attempt(records):
    tenant_id, docs = _tenant_docs(records, 2)
    batch_id = _batch(records, tenant_id, docs)
    one_doc = DispatchLimits(docs_in_flight=1, max_active_jobs=0)
    step = _step(records, batch_id, one_doc)
    job_id = step.send[0][0]
    with transaction(records) as s:
        assert jobs.claim_job(s, job_id, "w", 60).attempts == 1
        first = batches.back_off(s, batch_id, "HTTP 429", retry_after=1)
        assert batches.refund_attempt(s, job_id, "w")
        assert s.get(Job, job_id).attempts == 0
    with transaction(records) as s:
        batch = s.get(Batch, batch_id)
        assert batch.state == "paused" and "HTTP 429" in batch.paused_reason
        second = batches.back_off(s, batch_id, "HTTP 503", now=batch.resume_at)
    assert first == pytest.approx(batches.BACKOFF_BASE) and second == pytest.approx(2 * batches.BACKOFF_BASE)
    _finish(records, step.send[1:])
    held = _step(records, batch_id, one_doc)
    assert held.send == [] and held.wake_in and held.wake_in > 0  # dispatch waits for the pause to end


def test_a_pause_ends_when_its_time_is_up_even_with_no_free_slot(records):
    tenant_id, docs = _tenant_docs(records, 1)
    batch_id = _batch(records, tenant_id, docs)
    one_slot = DispatchLimits(max_active_jobs=1)
    assert len(_step(records, batch_id, one_slot).send) == 1  # the tenant's one slot is taken
    with transaction(records) as s:
        batches.back_off(s, batch_id, "HTTP 503")
        resume_at = s.get(Batch, batch_id).resume_at
    later = _step(records, batch_id, one_slot, now=resume_at + timedelta(seconds=1))
    assert later.send == [] and later.state == "running"
    with records() as s:
        assert (s.get(Batch, batch_id).paused_reason, s.get(Batch, batch_id).resume_at) == (None, None)


def test_cancel_cancels_the_running_items_jobs(records):
    tenant_id, docs = _tenant_docs(records, 2)
    batch_id = _batch(records, tenant_id, docs)
    step = _step(records, batch_id, DispatchLimits(docs_in_flight=1, max_active_jobs=0))
    _finish(records, step.send[:1])
    with transaction(records) as s:
        batch, cancelled = batches.cancel_batch(s, tenant_id, batch_id)
        assert batch.state == "cancelled" and sorted(cancelled) == sorted(j for j, _ in step.send[1:])
    with records() as s:
        states = [i.state for i in s.query(BatchItem).filter_by(batch_id=batch_id).order_by(BatchItem.position)]
        assert states == ["done"] + ["cancelled"] * 5
        assert {s.get(Job, j).state for j, _ in step.send[1:]} == {"cancelled"}


@pytest.mark.slow
def test_a_429_pauses_the_batch_and_spends_no_item_attempt(wk_env, records, blobs, llm, tmp_path):
    """A real worker, the endpoint answering 429 once (the client retries nothing here): the batch pauses for the
    back-off, the item's job goes back to the queue with its attempt given back, and every item ends done."""
    tenant_id, doc_id, ingest_id = new_document(records, blobs, make_pdf("pause me", pages=2))
    worker_env = wk_env | {"WHOLEDOC_INFERENCE_MAX_RETRIES": "0"}
    w = start_worker(worker_env, tmp_path / "w.log", name="b429", extra=("-B", "-s", str(tmp_path / "beat")))
    try:
        send(worker_env, "ingest", ingest_id, tenant_id)
        assert wait_job(records, ingest_id, lambda j: j.state in ("done", "failed")).state == "done"
        llm.script.append(Reply(status=429, headers={"Retry-After": "1"}))
        with transaction(records) as s:
            from pipeline.records.models import Document

            batch_id = batches.create_batch(s, tenant_id, [s.get(Document, doc_id)], ["q1?", "q2?"], thinking=False,
                                            max_tokens=8).id
        with env(worker_env):
            from workers.app import BATCH_ADVANCE, QUEUE_FOR_TASK, make_app

            app = make_app()
            app.send_task(BATCH_ADVANCE, args=[batch_id], queue=QUEUE_FOR_TASK[BATCH_ADVANCE])
            app.close()
        seen = []

        def finished() -> bool:
            with records() as s:
                batch = s.get(Batch, batch_id)
                seen.append((batch.state, batch.paused_reason))
                return batch.state == "done"

        wait_until(finished, 60, lambda: f"batch done (seen: {seen[-3:]})", 0.05)
    finally:
        stop(w)
    assert any(state == "paused" and "HTTP 429" in (reason or "") for state, reason in seen), seen
    with records() as s:
        items = s.query(BatchItem).filter_by(batch_id=batch_id).all()
        assert {i.state for i in items} == {"done"}
        assert sorted(s.get(Job, i.job_id).attempts for i in items) == [1, 1]  # the 429 cost no attempt
    chats = [r for r in llm.received if r.path == "/v1/chat/completions"]
    assert len(chats) == 3
