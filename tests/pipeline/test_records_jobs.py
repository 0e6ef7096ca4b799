"""The job lifecycle over real databases: leases, idempotent results, cancel, reconcile, and claim races."""

import multiprocessing as mp
from datetime import timedelta

import pytest

from pipeline.errors import Cancelled, Conflict, LeaseLost, NotFound
from pipeline.records import jobs
from pipeline.records.db import make_engine, session_factory, transaction
from pipeline.records.documents import create_document, get_document
from pipeline.records.models import Job, JobState, Result, new_id
from pipeline.records.tenants import create_tenant
from pipeline.records.types import utcnow


def _job(db, kind="summarize", max_attempts=3):
    with transaction(db) as s:
        tenant = create_tenant(s, f"t-{new_id()}")
        doc = create_document(s, tenant.id, kind="pdf", blob_key=f"tenants/{tenant.id}/blobs/sha256/{'a' * 64}",
                              sha256="a" * 64, size_bytes=10)
        job = jobs.create_job(s, tenant.id, kind, document_id=doc.id, params={"style": "brief"},
                              max_attempts=max_attempts)
        return tenant.id, doc.id, job.id


def test_claim_is_exclusive_until_the_lease_expires(db):
    _, _, job_id = _job(db)
    with transaction(db) as s:
        job = jobs.claim_job(s, job_id, "w1", 30)
        assert (job.state, job.lease_owner, job.attempts) == ("running", "w1", 1)
    with transaction(db) as s:
        assert jobs.claim_job(s, job_id, "w2", 30) is None
    with transaction(db) as s:  # 31 s later the lease is gone and another worker may take it over
        job = jobs.claim_job(s, job_id, "w2", 30, now=utcnow() + timedelta(seconds=31))
        assert (job.lease_owner, job.attempts) == ("w2", 2)
    with transaction(db) as s, pytest.raises(LeaseLost, match="not 'w1'"):
        jobs.renew_lease(s, job_id, "w1", 30)


def test_renew_and_progress_need_the_lease(db):
    _, _, job_id = _job(db)
    with transaction(db) as s:
        jobs.claim_job(s, job_id, "w1", 5)
    with transaction(db) as s:
        before = s.get(Job, job_id).lease_expires_at
        after = jobs.renew_lease(s, job_id, "w1", 60).lease_expires_at
        assert after - before > timedelta(seconds=50)
    with transaction(db) as s:
        job = jobs.record_progress(s, job_id, "w1", stage="prefill", prefill_tokens_done=512,
                                   prefill_tokens_total=2048, request_id="req-1")
        assert (job.stage, job.prefill_tokens_done, job.prefill_tokens_total, job.request_id) == \
               ("prefill", 512, 2048, "req-1")
    with transaction(db) as s, pytest.raises(LeaseLost):
        jobs.record_progress(s, job_id, "intruder", stage="generate")


def test_finish_stores_one_result_and_is_idempotent(db):
    tenant_id, doc_id, job_id = _job(db)
    with transaction(db) as s:
        jobs.claim_job(s, job_id, "w1", 30)
    usage = {"prompt_tokens": 100, "completion_tokens": 7, "cached_tokens": 64}
    cites = [{"anchor": "3", "status": "verified"}]
    with transaction(db) as s:
        first = jobs.finish_job(s, job_id, "w1", text="summary", citations=cites, usage=usage)
    with transaction(db) as s:  # a redelivered task that somehow got this far stores nothing new
        again = jobs.finish_job(s, job_id, "w2", text="other", citations=[], usage={})
        assert again.id == first.id and again.text == "summary"
        assert s.query(Result).filter_by(job_id=job_id).count() == 1
        job = jobs.get_job(s, tenant_id, job_id)
        assert (job.state, job.progress, job.lease_expires_at) == ("done", 1.0, None)
        stored = jobs.get_result(s, tenant_id, first.id)
        assert (stored.usage, stored.citations, stored.document_id) == (usage, cites, doc_id)
    with transaction(db) as s:  # and a done job can't be claimed again
        assert jobs.claim_job(s, job_id, "w3", 30) is None


def test_finished_job_counters_agree_with_the_usage(db):
    """Regression: the throttled progress reports left a finished job at 55,296 of 55,684 prefill tokens and 27
    generated while its usage said 32; the final record now takes the usage's counts."""
    tenant_id, _, job_id = _job(db)
    with transaction(db) as s:
        jobs.claim_job(s, job_id, "w1", 30)
        jobs.record_progress(s, job_id, "w1", prefill_tokens_done=55_296, prefill_tokens_total=55_684,
                             tokens_generated=27, progress=0.795)
    with transaction(db) as s:
        jobs.finish_job(s, job_id, "w1", text="x", usage={"prompt_tokens": 55_700, "completion_tokens": 32,
                                                          "cached_tokens": 16})
    with transaction(db) as s:
        job = jobs.get_job(s, tenant_id, job_id)
        assert (job.prefill_tokens_done, job.prefill_tokens_total, job.tokens_generated, job.progress) == (
            55_684, 55_684, 32, 1.0)


def test_finish_without_the_lease_stores_nothing(db):
    _, _, job_id = _job(db)
    with transaction(db) as s:
        jobs.claim_job(s, job_id, "w1", 30)
    with transaction(db) as s:
        jobs.claim_job(s, job_id, "w2", 30, now=utcnow() + timedelta(seconds=60))
    with transaction(db) as s, pytest.raises(LeaseLost):
        jobs.finish_job(s, job_id, "w1", text="late", usage={})
    with transaction(db) as s:
        assert jobs.result_for_job(s, job_id) is None


def test_cancel_stops_the_holder_and_blocks_claims(db):
    tenant_id, _, job_id = _job(db)
    with transaction(db) as s:
        jobs.claim_job(s, job_id, "w1", 30)
    with transaction(db) as s:
        assert jobs.cancel_job(s, tenant_id, job_id).state == "cancelled"
        assert jobs.cancel_job(s, tenant_id, job_id).state == "cancelled"  # idempotent
    with transaction(db) as s, pytest.raises(Cancelled):
        jobs.renew_lease(s, job_id, "w1", 30)
    with transaction(db) as s, pytest.raises(Cancelled):
        jobs.finish_job(s, job_id, "w1", text="x")
    with transaction(db) as s:
        assert jobs.claim_job(s, job_id, "w2", 30, now=utcnow() + timedelta(hours=1)) is None


def test_cancel_of_a_finished_job_is_a_conflict(db):
    tenant_id, _, job_id = _job(db)
    with transaction(db) as s:
        jobs.claim_job(s, job_id, "w1", 30)
        jobs.finish_job(s, job_id, "w1", text="done")
    with transaction(db) as s, pytest.raises(Conflict, match="already done"):
        jobs.cancel_job(s, tenant_id, job_id)


def test_other_tenant_sees_not_found(db):
    _, doc_id, job_id = _job(db)
    other, _, _ = _job(db)
    with transaction(db) as s:
        for call in (lambda: jobs.get_job(s, other, job_id), lambda: jobs.cancel_job(s, other, job_id),
                     lambda: get_document(s, other, doc_id)):
            with pytest.raises(NotFound):
                call()


def test_release_for_retry_until_attempts_run_out(db):
    _, _, job_id = _job(db, max_attempts=2)
    with transaction(db) as s:
        jobs.claim_job(s, job_id, "w1", 30)
        assert jobs.release_for_retry(s, job_id, "w1", "inference unreachable") is True
    with transaction(db) as s:
        assert s.get(Job, job_id).state == "queued"
        jobs.claim_job(s, job_id, "w1", 30)
        assert jobs.release_for_retry(s, job_id, "w1", "inference unreachable") is False
    with transaction(db) as s:
        job = s.get(Job, job_id)
        assert job.state == "failed" and "gave up after 2 attempts" in job.error


def test_a_job_of_one_attempt_gives_up_after_1_attempt(db):
    _, _, job_id = _job(db, max_attempts=1)
    with transaction(db) as s:
        jobs.claim_job(s, job_id, "w1", 30)
        assert jobs.release_for_retry(s, job_id, "w1", "inference unreachable") is False
    with transaction(db) as s:
        assert s.get(Job, job_id).error == "inference unreachable (gave up after 1 attempt)"


def test_reconcile_requeues_expired_leases_then_fails_them(db):
    _, doc_id, job_id = _job(db, kind="ingest", max_attempts=2)
    later = utcnow() + timedelta(seconds=100)
    with transaction(db) as s:
        jobs.claim_job(s, job_id, "dead-worker", 30)
    with transaction(db) as s:
        report = jobs.reconcile(s, now=later)
        assert job_id in [j.id for j in report.requeued] and job_id not in [j.id for j in report.failed]
        job = s.get(Job, job_id)
        assert (job.state, job.lease_owner) == ("queued", None)
    with transaction(db) as s:
        jobs.claim_job(s, job_id, "dead-again", 30, now=later)
    with transaction(db) as s:
        report = jobs.reconcile(s, now=later + timedelta(seconds=100))
        assert job_id in [j.id for j in report.failed] and job_id not in [j.id for j in report.requeued]
        job = s.get(Job, job_id)
        assert job.state == "failed" and "lease expired on attempt 2 of 2" in job.error
        doc = get_document(s, job.tenant_id, doc_id)
        assert doc.status == "failed" and doc.error == job.error


def test_reconcile_resends_stale_queued_jobs_and_leaves_live_ones(db):
    _, _, stale_id = _job(db)
    _, _, live_id = _job(db)
    with transaction(db) as s:
        jobs.claim_job(s, live_id, "w1", 600)
    with transaction(db) as s:
        report = jobs.reconcile(s, now=utcnow() + timedelta(seconds=400), resend_queued_after=300)
        assert [j.id for j in report.resent if j.id in (stale_id, live_id)] == [stale_id]
        assert live_id not in [j.id for j in report.requeued + report.failed]


def _race(url, job_id, barrier, results, owner):
    engine = make_engine(url)
    factory = session_factory(engine)
    with factory() as s:
        s.connection()  # connect (and begin) before the barrier so the claims really overlap
        barrier.wait()
        won = jobs.claim_job(s, job_id, owner, 60) is not None
        s.commit()
        results.put((owner, won))
    engine.dispose()


@pytest.mark.services  # PostgreSQL only
@pytest.mark.parametrize("round_", range(3))
def test_processes_racing_to_claim_one_job_exactly_one_wins(pg_url, round_):
    n = 8
    engine = make_engine(pg_url)
    factory = session_factory(engine)
    _, _, job_id = _job(factory)
    ctx = mp.get_context("fork")
    barrier, results = ctx.Barrier(n), ctx.Queue()
    procs = [ctx.Process(target=_race, args=(pg_url, job_id, barrier, results, f"w{i}")) for i in range(n)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    outcomes = [results.get(timeout=5) for _ in range(n)]
    winners = [owner for owner, won in outcomes if won]
    assert len(winners) == 1
    with transaction(factory) as s:
        job = s.get(Job, job_id)
        assert (job.state, job.lease_owner, job.attempts) == (JobState.RUNNING, winners[0], 1)
    engine.dispose()


@pytest.mark.services  # PostgreSQL only
def test_two_reconcilers_never_handle_the_same_job(pg_url):
    """Two beat processes: while one pass holds the expired rows, the other skips them (SKIP LOCKED)."""
    engine = make_engine(pg_url)
    factory = session_factory(engine)
    _, _, job_id = _job(factory)
    with transaction(factory) as s:
        jobs.claim_job(s, job_id, "lost-worker", 1)
    later = utcnow() + timedelta(seconds=10)
    first, second = factory(), factory()
    try:
        first.begin()
        mine = [j.id for j in jobs.reconcile(first, now=later).requeued]
        assert job_id in mine
        second.begin()
        theirs = [j.id for j in jobs.reconcile(second, now=later).requeued]
        assert job_id not in theirs
        first.commit()
        second.commit()
        with transaction(factory) as s:
            assert s.get(Job, job_id).state == "queued"
    finally:
        first.close()
        second.close()
        engine.dispose()
