"""Run one job under a lease: claim it, heartbeat, hand the body a context, and record how it ended (a task
re-sends its job when the attempt went back to the queue: `run_or_resend`)."""

import logging
import random
from collections.abc import Callable
from dataclasses import dataclass

import httpx
from celery.exceptions import SoftTimeLimitExceeded
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from pipeline.errors import (
    Cancelled,
    EndpointUnavailable,
    LeaseLost,
    PipelineError,
    RateLimited,
    StorageUnavailable,
)
from pipeline.logs import bound, get_logger
from pipeline.records import jobs
from pipeline.records.db import transaction
from pipeline.records.models import Job
from workers.app import send_job
from workers.lease import Lease
from workers.settings import WorkerSettings, sessions, settings

log = logging.getLogger(__name__)
events = get_logger("workers.jobs")

# Worth another attempt: the dependency may be back. Everything else fails the job with its message.
TRANSIENT = (EndpointUnavailable, RateLimited, StorageUnavailable, OperationalError, httpx.TransportError)


class Retry(Exception):
    """Raised by `run_job` when the job went back to the queue: the task re-sends itself after `countdown`."""

    def __init__(self, reason: str, countdown: float):
        super().__init__(reason)
        self.countdown = countdown


@dataclass
class JobContext:
    """What a task body gets: the job row (as read at claim), the lease, and a progress recorder."""

    job: Job
    lease: Lease
    settings: WorkerSettings

    def progress(self, **fields) -> None:
        """Record stage/progress on the job; raises Cancelled / LeaseLost when this worker must stop."""
        self.lease.check()
        try:
            with transaction(sessions()) as s:
                jobs.record_progress(s, self.job.id, self.settings.owner, **fields)
        except LeaseLost as exc:
            self.lease.mark_lost(exc)
            raise


def run_job(job_id: str, tenant_id: str, kind: str, body: Callable[[JobContext], None],
            on_failed: Callable[[Session, Job, str], None] | None = None) -> str:
    """Claim and run the job; returns how it ended: done | failed | cancelled | lost | skipped. Raises Retry.
    Every line logged meanwhile carries job_id and tenant_id (and the inference client's lines their request_id)."""
    with bound(job_id=job_id, tenant_id=tenant_id, kind=kind):
        events.info("job started")
        try:
            outcome = _run_job(job_id, tenant_id, kind, body, on_failed)
        except Retry as r:
            events.info("job requeued", reason=str(r), countdown=round(r.countdown, 1))
            raise
        events.info("job ended", outcome=outcome)
        return outcome


def _run_job(job_id: str, tenant_id: str, kind: str, body: Callable[[JobContext], None],
             on_failed: Callable[[Session, Job, str], None] | None) -> str:
    cfg = settings()
    with transaction(sessions()) as s:
        job = jobs.claim_job(s, job_id, cfg.owner, cfg.lease_seconds)
    if job is None:
        log.info("job %s: not claimable (taken, finished, cancelled or missing); skipping", job_id)
        return "skipped"
    if job.tenant_id != tenant_id or job.kind != kind:
        reason = f"job {job_id} is a {job.kind} job of another tenant or kind; refusing"
        with transaction(sessions()) as s:
            jobs.fail_job(s, job_id, None, reason)
        return "failed"
    with Lease(sessions(), job_id, cfg.owner, cfg.lease_seconds, cfg.heartbeat_seconds) as lease:
        ctx = JobContext(job=job, lease=lease, settings=cfg)
        try:
            body(ctx)
            return "done"
        except Cancelled:
            return "cancelled"
        except LeaseLost:
            return "lost"
        except SoftTimeLimitExceeded:
            return _fail(job, cfg, "the job ran past its time limit", on_failed)
        except Exception as exc:
            reason = str(exc) or type(exc).__name__
            if isinstance(exc, TRANSIENT):
                with transaction(sessions()) as s:
                    again = jobs.release_for_retry(s, job_id, cfg.owner, reason)
                    if not again and on_failed:
                        on_failed(s, job, reason)
                if again:
                    countdown = min(cfg.retry_backoff * 2 ** (job.attempts - 1), 600) * random.uniform(0.8, 1.2)
                    if isinstance(exc, RateLimited) and exc.retry_after:  # the endpoint said how long to wait
                        countdown = max(countdown, exc.retry_after)
                    raise Retry(reason, countdown) from exc
                return "failed"
            if not isinstance(exc, PipelineError):
                log.exception("job %s: unexpected error", job_id)
                reason = f"internal error ({type(exc).__name__}: {reason})"
            return _fail(job, cfg, reason, on_failed)


def run_or_resend(job_id: str, tenant_id: str, kind: str, body: Callable[[JobContext], None],
                  on_failed: Callable[[Session, Job, str], None] | None = None) -> str:
    """`run_job`, for a task: on Retry the job's message is sent again after its countdown and this returns "retry"."""
    try:
        return run_job(job_id, tenant_id, kind, body, on_failed=on_failed)
    except Retry as r:
        send_job(kind, job_id, tenant_id, countdown=r.countdown)
        return "retry"


def _fail(job: Job, cfg: WorkerSettings, reason: str, on_failed) -> str:
    try:
        with transaction(sessions()) as s:
            jobs.fail_job(s, job.id, cfg.owner, reason)
            if on_failed:
                on_failed(s, job, reason)
    except LeaseLost:
        return "lost"
    return "failed"
