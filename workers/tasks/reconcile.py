"""The reconciler (beat, every WHOLEDOC_RECONCILE_SECONDS): requeue jobs of lost workers, re-send lost messages,
delete expired idempotency keys."""

import logging

from pipeline.records import idempotency, jobs
from pipeline.records.db import transaction
from workers.app import RECONCILE, app, send_job
from workers.settings import sessions, settings

log = logging.getLogger(__name__)


@app.task(name=RECONCILE, soft_time_limit=60, time_limit=90)
def reconcile() -> dict:
    """One pass; safe to run concurrently (rows are locked with SKIP LOCKED) and to repeat."""
    with transaction(sessions()) as s:
        report = jobs.reconcile(s, resend_queued_after=settings().resend_queued_after)
        to_send = [(j.kind, j.id, j.tenant_id) for j in report.requeued + report.resent]
        counts = {"requeued": len(report.requeued), "resent": len(report.resent), "failed": len(report.failed)}
    with transaction(sessions()) as s:
        counts["expired_idempotency_keys"] = idempotency.purge_expired(s)
    for kind, job_id, tenant_id in to_send:
        send_job(kind, job_id, tenant_id)
    if counts["requeued"] or counts["resent"] or counts["failed"]:
        log.warning("reconcile: %s", counts)
    return counts
