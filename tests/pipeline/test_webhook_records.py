"""Webhook records over real databases: an event becomes one delivery per subscribed webhook (once, however often
it is emitted), jobs emit job.done / job.failed where they finish, attempts are claimed once each and back off
exponentially, with one webhook-id, until delivered or 24 h have passed."""

from datetime import timedelta

from pipeline.records import jobs, webhooks
from pipeline.records.db import transaction
from pipeline.records.documents import create_document
from pipeline.records.models import WebhookAttempt, WebhookDelivery, new_id
from pipeline.records.tenants import create_tenant
from pipeline.records.types import utcnow

HOOK = "https://hooks.example.com/wholedoc"
LIMIT = 100_000  # the database holds other tests' pending deliveries too: claim them all, keep this test's


def _tenant_with_hooks(db, *event_sets):
    with transaction(db) as s:
        tenant = create_tenant(s, f"t-{new_id()}")
        hooks = [webhooks.create_webhook(s, tenant.id, HOOK, list(events)).id for events in event_sets]
        return tenant.id, hooks


def _deliveries(db, tenant_id):
    with db() as s:
        return list(s.query(WebhookDelivery).filter_by(tenant_id=tenant_id).order_by(WebhookDelivery.created_at))


def test_an_event_reaches_the_webhooks_that_want_it_once(db):
    tenant_id, (wants, other) = _tenant_with_hooks(db, ["job.done", "digest.completed"], ["job.failed"])
    for _ in range(2):  # emitted twice (a redelivered task): one delivery
        with transaction(db) as s:
            webhooks.emit(s, tenant_id, "job.done", "j1", {"job_id": "j1"})
    found = _deliveries(db, tenant_id)
    assert [(d.webhook_id, d.event, d.state) for d in found] == [(wants, "job.done", "pending")]
    assert found[0].message_id.startswith("msg_") and found[0].payload["data"] == {"job_id": "j1"}
    assert found[0].payload["type"] == "job.done"


def test_jobs_emit_done_with_the_result_and_failed_with_the_reason(db):
    tenant_id, (hook,) = _tenant_with_hooks(db, ["job.done", "job.failed"])
    with transaction(db) as s:
        doc = create_document(s, tenant_id, kind="pdf", blob_key=f"tenants/{tenant_id}/blobs/sha256/{'a' * 64}",
                              sha256="a" * 64, size_bytes=10)
        ok = jobs.create_job(s, tenant_id, "summarize", document_id=doc.id, params={"style": "brief"}).id
        bad = jobs.create_job(s, tenant_id, "summarize", document_id=doc.id, params={"style": "brief"}).id
        lost = jobs.create_job(s, tenant_id, "summarize", document_id=doc.id, max_attempts=1).id
    with transaction(db) as s:
        jobs.claim_job(s, ok, "w", 60)
        result = jobs.finish_job(s, ok, "w", text="done")
        jobs.finish_job(s, ok, "w", text="again")  # idempotent: no second event
        jobs.claim_job(s, bad, "w", 60)
        jobs.fail_job(s, bad, "w", "the document is encrypted")
        jobs.claim_job(s, lost, "w", 1)
    with transaction(db) as s:
        jobs.reconcile(s, now=utcnow() + timedelta(seconds=5))
    by_job = {d.payload["data"]["job_id"]: d.payload for d in _deliveries(db, tenant_id)}
    assert by_job[ok]["type"] == "job.done" and by_job[ok]["data"]["result_id"] == result.id
    assert by_job[bad]["type"] == "job.failed" and by_job[bad]["data"]["error"] == "the document is encrypted"
    assert by_job[lost]["type"] == "job.failed" and "lease expired" in by_job[lost]["data"]["error"]
    assert len(by_job) == 3


def test_attempts_back_off_keep_their_message_id_and_stop_when_delivered(db):
    tenant_id, (hook,) = _tenant_with_hooks(db, ["job.done"])
    t0 = utcnow()
    with transaction(db) as s:
        (delivery,) = webhooks.emit(s, tenant_id, "job.done", "j", {"job_id": "j"}, now=t0)
        delivery_id = delivery.id
    policy = webhooks.RetryPolicy(base=10, max_gap=3600, give_up_after=24 * 3600)
    now, seen = t0, []
    for status, gap in ((500, 10), (503, 20), (None, 40), (200, None)):
        with transaction(db) as s:
            claimed = [c for c in webhooks.claim_due(s, now=now, lease=60, limit=LIMIT) if c.delivery_id == delivery_id]
            assert len(claimed) == 1, claimed
            again = webhooks.claim_due(s, now=now, lease=60, limit=LIMIT)  # taken: nobody else gets this attempt
            assert claimed[0].delivery_id not in {c.delivery_id for c in again}
            seen.append(claimed[0])
            state = webhooks.record_outcome(s, claimed[0], status, None if status == 200 else "no", policy=policy,
                                            now=now)
        if gap is None:
            assert state == "delivered"
            break
        assert state == "pending"
        with db() as s:
            d = s.get(WebhookDelivery, claimed[0].delivery_id)
            assert d.next_attempt_at == now + timedelta(seconds=gap)
        with transaction(db) as s:  # not due a moment before its time
            assert not [c for c in webhooks.claim_due(s, now=now + timedelta(seconds=gap - 1), limit=LIMIT)
                        if c.delivery_id == delivery_id]
        now += timedelta(seconds=gap)
    assert [c.number for c in seen] == [1, 2, 3, 4] and len({c.message_id for c in seen}) == 1
    with db() as s:
        attempts = s.query(WebhookAttempt).filter_by(delivery_id=seen[0].delivery_id).order_by("number").all()
        assert [(a.number, a.status_code) for a in attempts] == [(1, 500), (2, 503), (3, None), (4, 200)]
        assert all(a.finished_at is not None for a in attempts)


def test_a_delivery_is_failed_once_retries_would_pass_24_hours(db):
    tenant_id, _ = _tenant_with_hooks(db, ["job.failed"])
    t0 = utcnow() - timedelta(hours=23, minutes=59)
    with transaction(db) as s:
        (delivery,) = webhooks.emit(s, tenant_id, "job.failed", "j", {"job_id": "j"}, now=t0)
        delivery_id = delivery.id
    policy = webhooks.RetryPolicy(base=10, max_gap=3600, give_up_after=24 * 3600)
    with transaction(db) as s:
        (claimed,) = [c for c in webhooks.claim_due(s, lease=60, limit=LIMIT) if c.delivery_id == delivery_id]
        webhooks.record_outcome(s, claimed, 500, "HTTP 500", policy=policy, now=utcnow() + timedelta(seconds=61))
    with db() as s:
        d = s.get(WebhookDelivery, delivery_id)
        assert (d.state, d.next_attempt_at, d.last_status) == ("failed", None, 500)


def test_a_lost_attempt_is_taken_again_after_its_lease(db):
    tenant_id, _ = _tenant_with_hooks(db, ["job.done"])
    with transaction(db) as s:
        (delivery,) = webhooks.emit(s, tenant_id, "job.done", "j", {"job_id": "j"})
        delivery_id = delivery.id
    with transaction(db) as s:
        (first,) = [c for c in webhooks.claim_due(s, lease=30, limit=LIMIT) if c.delivery_id == delivery_id]
    with transaction(db) as s:  # its worker died mid-send; 31 s later the attempt is taken again
        (second,) = [c for c in webhooks.claim_due(s, now=utcnow() + timedelta(seconds=31), lease=30, limit=LIMIT)
                     if c.delivery_id == delivery_id]
    assert (first.number, second.number, first.message_id) == (1, 2, second.message_id)
    with transaction(db) as s:  # the lost worker's late outcome changes nothing
        assert webhooks.record_outcome(s, first, 200, None, policy=webhooks.RetryPolicy()) == "pending"
