"""kill -9 of a worker in the middle of a summary: the reconciler (beat) requeues it, exactly one result is stored."""

import signal

import pytest

from pipeline.records import idempotency, jobs
from pipeline.records.db import transaction
from pipeline.records.models import IdempotencyKey
from pipeline.records.types import utcnow
from tests.api.helpers import make_pdf
from tests.helpers.services import start_worker, stop
from tests.helpers.wait import wait_until
from tests.pipeline.faultserver import Reply
from tests.workers.helpers import new_document, results_of, send, wait_job

pytestmark = [pytest.mark.services, pytest.mark.slow]


def _summary_generating(wk_env, records, llm, tenant_id, doc_id, ingest_id, word: str, n: int):
    """Ingest the document, then a summary job whose slow reply (n words) is streaming: (job id, its row then)."""
    send(wk_env, "ingest", ingest_id, tenant_id)
    assert wait_job(records, ingest_id, lambda j: j.state in ("done", "failed")).state == "done"
    llm.default = Reply(content=tuple(f"{word}{i} " for i in range(n)), chunk_delay=0.2)
    with transaction(records) as s:
        job_id = jobs.create_job(s, tenant_id, "summarize", document_id=doc_id,
                                 params={"style": "brief", "thinking": False, "max_tokens": 512}).id
    send(wk_env, "summarize", job_id, tenant_id)
    return job_id, wait_job(records, job_id, lambda j: (j.tokens_generated or 0) > 0, what="generating")


def test_kill9_mid_job_is_requeued_and_stores_exactly_one_result(wk_env, records, blobs, llm, tmp_path):
    tenant_id, doc_id, ingest_id = new_document(records, blobs, make_pdf("kill me", pages=2))
    a = start_worker(wk_env, tmp_path / "a.log", name="a")
    b = None
    try:
        job_id, running = _summary_generating(wk_env, records, llm, tenant_id, doc_id, ingest_id, "w", 25)
        assert running.lease_owner and running.attempts == 1
        a.send_signal(signal.SIGKILL)
        a.wait(10)
        with transaction(records) as s:  # a stored response past its 24 h: the same reconciler pass deletes it
            idempotency.remember(s, tenant_id, "old-key", "fp", "POST /v1/x", status_code=201, body={}, location=None,
                                 now=utcnow() - idempotency.TTL)
        # worker b runs the beat schedule too: its reconciler finds a's lease expired and requeues the job
        b = start_worker(wk_env, tmp_path / "b.log", name="b", extra=("-B", "-s", str(tmp_path / "beat-schedule")))
        job = wait_job(records, job_id, lambda j: j.state in ("done", "failed"), timeout=60, what="finished on b")
        assert job.state == "done", job.error
        assert job.attempts == 2 and job.lease_owner != running.lease_owner
        with records() as s:
            assert s.query(IdempotencyKey).filter_by(tenant_id=tenant_id).count() == 0
        [result] = results_of(records, job_id)
        assert result.text == "".join(f"w{i} " for i in range(25))
        rids = [r.headers.get("X-Request-Id") for r in llm.received if r.path == "/v1/chat/completions"]
        assert rids == [f"job-{job_id}-1", f"job-{job_id}-2"]
        send(wk_env, "summarize", job_id, tenant_id)  # a's lost message, when redelivered, changes nothing
        log = tmp_path / "b.log"
        wait_until(lambda: any(f"[{job_id}] succeeded" in line and "'skipped'" in line
                               for line in log.read_text().splitlines()), 20, "the redelivered task's run")
        assert [r.id for r in results_of(records, job_id)] == [result.id]
        assert len([r for r in llm.received if r.path == "/v1/chat/completions"]) == 2
    finally:
        stop(a)
        if b is not None:
            stop(b)


def test_sigterm_mid_job_finishes_it_before_exiting(wk_env, records, blobs, llm, tmp_path):
    """Warm shutdown: the running job completes and is stored; the worker then exits 0."""
    tenant_id, doc_id, ingest_id = new_document(records, blobs, make_pdf("term me"))
    w = start_worker(wk_env, tmp_path / "w.log", name="t")
    try:
        job_id, _ = _summary_generating(wk_env, records, llm, tenant_id, doc_id, ingest_id, "t", 10)
        w.send_signal(signal.SIGTERM)
        assert w.wait(30) == 0
        job = wait_job(records, job_id, lambda j: j.state != "running", timeout=5)
        assert (job.state, job.attempts) == ("done", 1)
        assert len(results_of(records, job_id)) == 1
    finally:
        stop(w)
