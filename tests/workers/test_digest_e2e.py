"""Digests and webhooks end to end on real processes: two Celery beats (one in the worker, one on its own) and a
worker on PostgreSQL and Redis, an OpenAI-compatible server on loopback, real PDFs through ingest. A due schedule
makes exactly one run; it summarizes each document, writes one digest whose citations are checked across the
documents and mapped to their ids; digest.completed reaches a receiver on loopback that answers 500, 500, then 200:
the same webhook-id three times, every signature verified with the standardwebhooks library. A second run covers
only the newer document."""

from datetime import UTC, datetime

import pytest

from pipeline.records import digests, jobs, webhooks
from pipeline.records.db import transaction
from pipeline.records.documents import create_document
from pipeline.records.models import (
    Corpus,
    CorpusDocument,
    DigestRun,
    Job,
    Result,
    WebhookAttempt,
    WebhookDelivery,
    new_id,
)
from pipeline.records.tenants import create_tenant
from tests.api.helpers import make_pdf
from tests.helpers.services import BIN, ROOT, start_worker, stop
from tests.helpers.wait import wait_until
from tests.pipeline.faultserver import Reply
from tests.pipeline.webhook_receiver import Receiver
from tests.workers.helpers import send, wait_job

pytestmark = [pytest.mark.services, pytest.mark.slow]
DIGEST_TEXT = ("Both reports matter. ", '[doc 1, p. 1: "Alpha report 1"] and ', '[doc 2, p. 1: "not in it"]')


def _beat(env: dict, tmp_path, name: str):
    import os
    import subprocess

    log = tmp_path / f"{name}.log"
    with log.open("ab") as out:
        proc = subprocess.Popen([str(BIN / "celery"), "-A", "workers.app", "beat", "-s", str(tmp_path / name),
                                 "--loglevel=INFO"], cwd=ROOT, env={**os.environ, **env}, stdout=out,
                                stderr=subprocess.STDOUT)
    wait_until(lambda: "Sending due task" in log.read_text(errors="replace"), 30, f"beat {name} sending (log: {log})")
    return proc


def _ingested(records, blobs, wk_env, tenant_id: str, *texts: str) -> list[str]:
    """The documents of these one-page PDFs, ingested by the worker."""
    made = []
    for text in texts:
        ref = blobs.put_bytes(tenant_id, make_pdf(text))
        with transaction(records) as s:
            doc = create_document(s, tenant_id, kind="pdf", blob_key=ref.key, sha256=ref.sha256,
                                  size_bytes=ref.size, media_type="application/pdf")
            job = jobs.create_job(s, tenant_id, "ingest", document_id=doc.id)
        blobs.add_ref(ref.key, doc.id)
        send(wk_env, "ingest", job.id, tenant_id)
        made.append((doc.id, job.id))
    for _, job_id in made:
        assert wait_job(records, job_id, lambda j: j.state in ("done", "failed"), what="ingested").state == "done"
    return [doc_id for doc_id, _ in made]


def _add(records, corpus_id: str, document_id: str) -> None:
    with transaction(records) as s:
        s.add(CorpusDocument(corpus_id=corpus_id, document_id=document_id))


def _run_done(records, run_id: str) -> DigestRun:
    seen = {}

    def done():
        with records() as s:
            seen["run"] = run = s.get(DigestRun, run_id)
            return run is not None and run.state in ("done", "failed")

    wait_until(done, 90, lambda: f"run {run_id} finished (last: {vars(seen.get('run') or object())})")
    return seen["run"]


def test_a_due_schedule_digests_once_and_its_webhook_is_retried_with_one_id(records, blobs, wk_env, llm, tmp_path):
    env = wk_env | {"WHOLEDOC_DIGEST_TICK_SECONDS": "0.5", "WHOLEDOC_WEBHOOK_POLL_SECONDS": "0.3",
                    "WHOLEDOC_WEBHOOK_RETRY_BASE": "0.3", "WHOLEDOC_WEBHOOK_ALLOW_PRIVATE": "1",
                    "WHOLEDOC_RECONCILE_SECONDS": "30"}
    llm.default = Reply(content=DIGEST_TEXT)
    with transaction(records) as s:
        tenant_id = create_tenant(s, f"t-{new_id()}").id
        corpus = Corpus(tenant_id=tenant_id, name="reports")
        s.add(corpus)
        s.flush()
        corpus_id = corpus.id
    procs = [start_worker(env, tmp_path / "w.log", extra=("-B", "-s", str(tmp_path / "beat-in-worker")))]
    receiver = None
    try:
        alpha, beta = _ingested(records, blobs, env, tenant_id, "Alpha report", "Beta report")
        _add(records, corpus_id, alpha)
        _add(records, corpus_id, beta)
        with transaction(records) as s:
            hook = webhooks.create_webhook(s, tenant_id, "http://127.0.0.1:1/placeholder", ["digest.completed"])
            receiver = Receiver(hook.secret, statuses=(500, 500))
            hook.url = receiver.url
            # a yearly cron: its last fire time is due now and the next is months away, so the run's period is
            # (fire, fire) whatever the wall clock's hour when the beat ticks
            schedule = digests.create_schedule(s, tenant_id, corpus_id, cron="0 0 1 1 *", timezone="UTC",
                                               style="brief", min_interval=900)
            fire = datetime.now(UTC).replace(month=1, day=1, hour=0, minute=0, second=0, microsecond=0)
            schedule.next_run_at = fire  # its fire time has passed (as after a restart)
            schedule_id = schedule.id
        procs.append(_beat(env, tmp_path, "beat"))  # a second beat beside the worker's own

        wait_until(lambda: _runs(records, schedule_id), 30, "the scheduled run")
        (run,) = _runs(records, schedule_id)
        run = _run_done(records, run.id)
        assert run.state == "done", run.error
        assert (run.period_start, run.period_end, run.trigger, run.mode) == (fire, fire, "schedule", "whole")
        assert [(d["doc"], d["document_id"]) for d in run.documents] == [(1, alpha), (2, beta)]
        with records() as s:
            result = s.get(Result, run.result_id)
            assert result.kind == "digest" and result.text == "".join(DIGEST_TEXT)
            assert [(d["doc"], d["document_id"]) for d in result.coverage["documents"]] == [(1, alpha), (2, beta)]
            cites = [(c["doc"], c["document_id"], c["status"]) for c in result.citations]
            assert cites == [(1, alpha, "verified"), (2, beta, "unverified")]
            summaries = s.query(Job).filter(Job.tenant_id == tenant_id, Job.kind == "summarize").all()
            assert sorted(j.document_id for j in summaries) == sorted([alpha, beta])
            assert all(j.state == "done" for j in summaries)
            assert [d["summary_result_id"] for d in run.documents] == [
                jobs.result_for_job(s, j.id).id for j in sorted(summaries, key=lambda j: j.document_id != alpha)]

        # the webhook: 500, 500, 200, one webhook-id, every signature verified by the library
        wait_until(lambda: len(receiver.hits) >= 3, 30, lambda: f"3 deliveries (got {len(receiver.hits)})")
        hits = receiver.hits[:3]
        assert all(h.verified for h in hits), [h.error for h in hits]
        assert len({h.headers["webhook-id"] for h in hits}) == 1
        assert hits[0].payload["type"] == "digest.completed"
        assert hits[0].payload["data"]["run_id"] == run.id and hits[0].payload["data"]["result_id"] == result.id
        with records() as s:
            (delivery,) = s.query(WebhookDelivery).filter_by(tenant_id=tenant_id).all()
            wait_until(lambda: _state(records, delivery.id) == "delivered", 10, "delivered")
            attempts = s.query(WebhookAttempt).filter_by(delivery_id=delivery.id).order_by("number").all()
            assert [a.status_code for a in attempts] == [500, 500, 200]

        # a second run (run now) covers only the document added since the first
        (gamma,) = _ingested(records, blobs, env, tenant_id, "Gamma report")
        _add(records, corpus_id, gamma)
        with transaction(records) as s:
            second = digests.run_now(s, tenant_id, schedule_id).id
        second = _run_done(records, second)
        assert second.state == "done", second.error
        assert second.document_ids == [gamma] and [d["document_id"] for d in second.documents] == [gamma]
        assert len(_runs(records, schedule_id)) == 2  # the beats made no other run meanwhile
        wait_until(lambda: len(receiver.hits) == 4, 30, "the second run's webhook")
        assert receiver.hits[3].verified and receiver.hits[3].payload["data"]["run_id"] == second.id
    finally:
        for p in procs:
            stop(p)
        if receiver:
            receiver.close()


def _runs(records, schedule_id: str) -> list[DigestRun]:
    with records() as s:
        return list(s.query(DigestRun).filter_by(schedule_id=schedule_id).order_by(DigestRun.created_at))


def _state(records, delivery_id: str) -> str:
    with records() as s:
        return s.get(WebhookDelivery, delivery_id).state
