"""A tenant's usage as admission control reads it: active LLM jobs, and uncached tokens of today's results."""

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from pipeline.records import jobs
from pipeline.records.db import make_engine, session_factory, transaction
from pipeline.records.models import new_id
from pipeline.records.tenants import create_tenant
from pipeline.records.usage import active_llm_jobs, day_start, lock_tenant, next_day_start, tokens_used_since


def _tenant(db):
    with transaction(db) as s:
        return create_tenant(s, f"usage-{new_id()}").id


def _finished(db, tenant_id, usage, created_at=None):
    with transaction(db) as s:
        job = jobs.create_job(s, tenant_id, "summarize")
        assert jobs.claim_job(s, job.id, "w", 60) is not None
        result = jobs.finish_job(s, job.id, "w", text="t", usage=usage)
        if created_at is not None:
            result.created_at = created_at
    return job.id


def test_active_llm_jobs_counts_queued_and_running_summaries_and_answers_only(db):
    t, other = _tenant(db), _tenant(db)
    with transaction(db) as s:
        queued = jobs.create_job(s, t, "summarize")
        running = jobs.create_job(s, t, "answer")
        jobs.claim_job(s, running.id, "w", 60)
        jobs.create_job(s, t, "ingest")  # not an LLM job
        cancelled = jobs.create_job(s, t, "answer")
        jobs.cancel_job(s, t, cancelled.id)
        jobs.create_job(s, other, "summarize")  # another tenant's
    _finished(db, t, {})  # done
    with transaction(db) as s:
        lock_tenant(s, t)
        assert active_llm_jobs(s, t) == 2
        jobs.cancel_job(s, t, queued.id)
        assert active_llm_jobs(s, t) == 1


def test_tokens_used_since_sums_uncached_prompt_and_completion_tokens(db):
    t, other = _tenant(db), _tenant(db)
    now = datetime.now(UTC)
    _finished(db, t, {"prompt_tokens": 1000, "completion_tokens": 50, "cached_tokens": 900})  # 150
    _finished(db, t, {"prompt_tokens": 200, "completion_tokens": 20, "cached_tokens": None})  # 220
    _finished(db, t, {})  # a result with no usage counts 0
    _finished(db, t, {"prompt_tokens": 5000, "completion_tokens": 5}, created_at=day_start(now) - timedelta(seconds=1))
    _finished(db, other, {"prompt_tokens": 7777, "completion_tokens": 1})
    with db() as s:
        assert tokens_used_since(s, t, day_start(now)) == 370
        assert tokens_used_since(s, t, day_start(now) - timedelta(days=1)) == 370 + 5005
        assert tokens_used_since(s, _tenant(db), day_start(now)) == 0


def test_day_boundaries_are_utc_midnights():
    from zoneinfo import ZoneInfo

    late = datetime(2026, 3, 1, 23, 30, tzinfo=ZoneInfo("America/New_York"))  # 04:30 UTC on March 2
    assert day_start(late) == datetime(2026, 3, 2, tzinfo=UTC)
    assert next_day_start(late) == datetime(2026, 3, 3, tzinfo=UTC)


@pytest.mark.services  # PostgreSQL only
def test_lock_tenant_holds_the_row_until_the_transaction_ends(pg_url):
    """Admission control relies on this lock: a second transaction cannot take it while the first holds it."""
    engine = make_engine(pg_url)
    sessions = session_factory(engine)
    t = _tenant(sessions)
    try:
        with sessions() as holder, sessions() as waiter:
            lock_tenant(holder, t)
            waiter.execute(text("SET LOCAL lock_timeout = '50ms'"))
            with pytest.raises(OperationalError, match="lock"):
                lock_tenant(waiter, t)
            waiter.rollback()
            holder.commit()
            lock_tenant(waiter, t)  # free once the holder's transaction ended
            waiter.rollback()
    finally:
        engine.dispose()
