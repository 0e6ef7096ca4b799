"""Digest schedules over PostgreSQL with an injected clock (pipeline.records.digests, .digest_runs): two schedulers
make exactly one run per period, missed periods become one run covering the gap, a paused schedule makes none; a
run covers only the documents added since the previous successful run; run-now; its steps reuse summaries, queue
missing ones, skip deleted documents, then make one digest job."""

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest

from pipeline.digests.schedule import InvalidSchedule
from pipeline.records import digest_runs, digests, jobs
from pipeline.records.db import transaction
from pipeline.records.documents import create_document, delete_document, mark_document_ready
from pipeline.records.models import Corpus, CorpusDocument, DigestRun, JobKind, new_id
from pipeline.records.tenants import create_tenant

pytestmark = pytest.mark.services
MIN = 900


def _hour(dt: datetime) -> datetime:
    return dt.replace(minute=0, second=0, microsecond=0)


@pytest.fixture
def corpus(records):
    """(tenant id, corpus id, add(n) → n new ready documents added to the corpus at given times)."""
    with transaction(records) as s:
        tenant = create_tenant(s, f"t-{new_id()}")
        corpus = Corpus(tenant_id=tenant.id, name="reports")
        s.add(corpus)
        s.flush()
        tenant_id, corpus_id = tenant.id, corpus.id

    def add(*added_at: datetime) -> list[str]:
        ids = []
        with transaction(records) as s:
            for when in added_at:
                doc = create_document(s, tenant_id, kind="pdf", blob_key=f"tenants/{tenant_id}/blobs/sha256/{'a' * 64}",
                                      sha256="a" * 64, size_bytes=10)
                mark_document_ready(s, doc.id, text_blob_key=f"tenants/{tenant_id}/blobs/sha256/{'b' * 64}",
                                    num_sections=1, num_tokens=10)
                s.add(CorpusDocument(corpus_id=corpus_id, document_id=doc.id, added_at=when))
                ids.append(doc.id)
        return ids

    return tenant_id, corpus_id, add


def _schedule(records, tenant_id, corpus_id, now, cron="0 * * * *", tz="UTC"):
    with transaction(records) as s:
        return digests.create_schedule(s, tenant_id, corpus_id, cron=cron, timezone=tz, style="brief",
                                       min_interval=MIN, now=now).id


def _runs(records, schedule_id) -> list[DigestRun]:
    with records() as s:
        return list(s.query(DigestRun).filter_by(schedule_id=schedule_id).order_by(DigestRun.period_start))


def _due(session, now, schedule_id) -> list[str]:
    """The runs one scheduler pass at `now` makes for this schedule (the database holds other tests' schedules)."""
    return [r.id for r in digests.schedule_due(session, now=now) if r.schedule_id == schedule_id]


def _two_schedulers(records, now, schedule_id) -> list[str]:
    """Two scheduler passes at the same injected `now`, started together, each in its own connection."""
    barrier = threading.Barrier(2)

    def one() -> list[str]:
        barrier.wait(60)
        with transaction(records) as s:
            return _due(s, now, schedule_id)

    with ThreadPoolExecutor(2) as pool:  # .result() re-raises a pass's exception and waits for it to finish
        passes = [pool.submit(one) for _ in range(2)]
        return [run_id for made in passes for run_id in made.result(timeout=120)]


def test_two_schedulers_make_one_run_per_period_and_a_gap_is_one_run(records, corpus):
    tenant_id, corpus_id, _ = corpus
    t0 = _hour(datetime.now(UTC)) + timedelta(days=1, minutes=30)  # 00:30 tomorrow-ish: fires on the hour
    schedule_id = _schedule(records, tenant_id, corpus_id, t0)
    fires = [_hour(t0) + timedelta(hours=h) for h in (1, 2, 3)]
    for fire in fires:
        assert len(_two_schedulers(records, fire + timedelta(seconds=5), schedule_id)) == 1
        with transaction(records) as s:  # the same tick delivered again: nothing more
            assert _due(s, fire + timedelta(seconds=6), schedule_id) == []
    with transaction(records) as s:  # not due before the next fire time
        assert _due(s, fires[-1] + timedelta(minutes=59), schedule_id) == []
    # downtime: four fire times missed, caught up as one run covering them
    later = fires[-1] + timedelta(hours=4, minutes=30)
    assert len(_two_schedulers(records, later, schedule_id)) == 1
    runs = _runs(records, schedule_id)
    assert [(r.period_start, r.period_end, r.trigger) for r in runs] == [
        (f, f, "schedule") for f in fires] + [(fires[-1] + timedelta(hours=1), fires[-1] + timedelta(hours=4),
                                               "schedule")]
    with records() as s:
        assert digests.get_schedule(s, tenant_id, schedule_id).next_run_at == fires[-1] + timedelta(hours=5)
    # a scheduler that read the schedule before the first pass moved it on (no row lock: SQLite, or a stale task)
    # tries the same (schedule, period start) again: the unique key makes it nothing
    with transaction(records) as s:
        digests.get_schedule(s, tenant_id, schedule_id).next_run_at = fires[0]
    with transaction(records) as s:
        assert _due(s, fires[0] + timedelta(seconds=5), schedule_id) == []
    assert len(_runs(records, schedule_id)) == 4


def test_a_paused_schedule_makes_no_runs_and_unpaused_starts_at_its_next_fire(records, corpus):
    tenant_id, corpus_id, _ = corpus
    t0 = _hour(datetime.now(UTC)) + timedelta(days=2, minutes=10)
    schedule_id = _schedule(records, tenant_id, corpus_id, t0)
    with transaction(records) as s:
        digests.update_schedule(s, tenant_id, schedule_id, min_interval=MIN, paused=True, now=t0)
    with transaction(records) as s:
        assert _due(s, t0 + timedelta(hours=5), schedule_id) == []
    with transaction(records) as s:
        schedule = digests.update_schedule(s, tenant_id, schedule_id, min_interval=MIN, paused=False,
                                           now=t0 + timedelta(hours=5))
        assert schedule.next_run_at == _hour(t0) + timedelta(hours=6)  # the paused hours are not caught up
    assert _runs(records, schedule_id) == []


def test_a_second_run_covers_only_documents_added_since_the_last_successful_one(records, corpus):
    tenant_id, corpus_id, add = corpus
    now = datetime.now(UTC)
    first_docs = add(now - timedelta(minutes=3), now - timedelta(minutes=2))
    schedule_id = _schedule(records, tenant_id, corpus_id, now)
    with transaction(records) as s:
        run1 = digests.run_now(s, tenant_id, schedule_id, now=now)
        assert run1.document_ids == first_docs and run1.added_after is None and run1.trigger == "manual"
        run1.state = "failed"  # a failed run covers nothing: the next one starts where the last good one ended
    newer = add(now + timedelta(seconds=1))
    with transaction(records) as s:
        run2 = digests.run_now(s, tenant_id, schedule_id, now=now + timedelta(seconds=2))
        assert run2.document_ids == first_docs + newer
        run2.state = "done"
    latest = add(now + timedelta(seconds=3))
    with transaction(records) as s:
        run3 = digests.run_now(s, tenant_id, schedule_id, now=now + timedelta(seconds=4))
        assert run3.document_ids == latest and run3.added_after == now + timedelta(seconds=2)
        run3.state = "cancelled"  # (no scheduler of another test picks it up)


@pytest.mark.parametrize(("cron", "tz", "why"), [("*/5 * * * *", "UTC", "shortest interval allowed is 15 min"),
                                                  ("0 25 * * *", "UTC", "not a 5-field cron"),
                                                  ("0 7 * * 1", "Mars/Olympus", "not an IANA time zone")])
def test_bad_schedules_are_refused_with_a_reason(records, corpus, cron, tz, why):
    tenant_id, corpus_id, _ = corpus
    with pytest.raises(InvalidSchedule, match=why), transaction(records) as s:
        digests.create_schedule(s, tenant_id, corpus_id, cron=cron, timezone=tz, style="brief", min_interval=MIN)


def test_the_cron_is_read_in_the_schedules_time_zone(records, corpus):
    tenant_id, corpus_id, _ = corpus
    winter = datetime(2027, 1, 4, 0, 0, tzinfo=UTC)  # a Monday
    with transaction(records) as s:
        schedule = digests.create_schedule(s, tenant_id, corpus_id, cron="0 7 * * 1", timezone="Europe/Berlin",
                                           style="brief", min_interval=MIN, now=winter)
        assert schedule.next_run_at == datetime(2027, 1, 4, 6, 0, tzinfo=UTC)  # 07:00 CET


def test_run_steps_reuse_queue_and_skip_then_make_one_digest_job(records, corpus):
    tenant_id, corpus_id, add = corpus
    now = datetime.now(UTC)
    summarized, fresh, deleted = add(now - timedelta(minutes=3), now - timedelta(minutes=2),
                                     now - timedelta(minutes=1))
    with transaction(records) as s:  # an existing brief summary of the first document
        job = jobs.create_job(s, tenant_id, "summarize", document_id=summarized,
                              params={"style": "brief", "thinking": False, "max_tokens": 512})
        jobs.claim_job(s, job.id, "w", 60)
        existing = jobs.finish_job(s, job.id, "w", text="an old summary").id
    schedule_id = _schedule(records, tenant_id, corpus_id, now)
    with transaction(records) as s:
        run_id = digests.run_now(s, tenant_id, schedule_id, now=now).id
    with transaction(records) as s:
        delete_document(s, tenant_id, deleted)
    with transaction(records) as s:
        step = digest_runs.advance(s, only=[run_id])
        queued = [j for j in step.to_send if j.document_id == fresh]
        assert len(queued) == 1 and queued[0].kind == JobKind.SUMMARIZE and queued[0].params["style"] == "brief"
    with transaction(records) as s:  # waiting for that summary: nothing new is queued
        assert not [j for j in digest_runs.advance(s, only=[run_id]).to_send if j.document_id in (fresh, summarized)]
    with transaction(records) as s:
        jobs.claim_job(s, queued[0].id, "w", 60)
        made = jobs.finish_job(s, queued[0].id, "w", text="a new summary").id
    with transaction(records) as s:
        step = digest_runs.advance(s, only=[run_id])
        (digest_job,) = [j for j in step.to_send if j.params.get("run_id") == run_id]
        assert digest_job.kind == JobKind.DIGEST
    with records() as s:
        run = s.get(DigestRun, run_id)
        assert (run.state, run.stage, run.job_id) == ("running", "digest", digest_job.id)
        assert run.documents == [{"document_id": summarized, "summary_result_id": existing},
                                 {"document_id": fresh, "summary_result_id": made}]
        assert run.skipped == [{"document_id": deleted, "reason": "deleted before the run"}]
    with transaction(records) as s:  # the digest job fails for good: so does the run
        jobs.fail_job(s, digest_job.id, None, "the endpoint refused")
    with transaction(records) as s:
        digest_runs.advance(s, only=[run_id])
    with records() as s:
        run = s.get(DigestRun, run_id)
        assert run.state == "failed" and "the endpoint refused" in run.error
