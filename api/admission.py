"""Admission control for LLM jobs (summaries, questions): a tenant's daily token budget and its cap on active jobs
(429), and the service's cap on active jobs of all tenants together (503: the service is full, not the tenant).

Checked in the transaction that creates the job, with the tenant row locked, so a refused job is never created
and two API processes cannot both admit the one that goes over a cap.
"""

from datetime import datetime

from sqlalchemy.orm import Session

from api.errors import LimitExceeded
from api.settings import ApiSettings
from pipeline.records.types import utcnow
from pipeline.records.usage import (
    active_llm_jobs,
    day_start,
    lock_admissions,
    lock_tenant,
    next_day_start,
    tokens_used_since,
)

# NOTE: when a job ends is unknown; this is how long a client should wait before trying again.
ACTIVE_JOBS_RETRY_AFTER = 10


def _until(then: datetime, now: datetime) -> str:
    minutes = int((then - now).total_seconds() // 60)
    return f"{minutes // 60} h {minutes % 60} min"


def admit_llm_job(session: Session, tenant_id: str, settings: ApiSettings, *, now: datetime | None = None) -> None:
    """Raise LimitExceeded when the tenant may not start another LLM job now; else return (the lock stays held)."""
    if not settings.daily_token_budget and not settings.max_active_jobs and not settings.max_active_jobs_total:
        return
    now = now or utcnow()
    lock_tenant(session, tenant_id)
    budget = settings.daily_token_budget
    if budget:
        used = tokens_used_since(session, tenant_id, day_start(now))
        if used >= budget:
            resets = next_day_start(now)
            raise LimitExceeded(
                "token_budget_exhausted",
                f"the daily token budget of {budget:,} tokens is used up ({used:,} tokens used today, UTC: "
                f"prompt tokens not served from the cache plus output tokens); it resets at 00:00 UTC, in "
                f"{_until(resets, now)}", retry_after=int((resets - now).total_seconds()) + 1)
    cap = settings.max_active_jobs
    if cap:
        active = active_llm_jobs(session, tenant_id)
        if active >= cap:
            raise LimitExceeded(
                "too_many_active_jobs",
                f"{active} summary / question jobs are already queued or running; at most {cap} may be at once. "
                "Wait for one to finish (or cancel one), then submit again", retry_after=ACTIVE_JOBS_RETRY_AFTER)
    total = settings.max_active_jobs_total
    if total:
        lock_admissions(session)
        if active_llm_jobs(session, None) >= total:
            raise LimitExceeded(
                "service_busy", f"the service is at its limit of {total} queued or running summary / question jobs "
                "across all users; submit again after the Retry-After header's seconds",
                retry_after=ACTIVE_JOBS_RETRY_AFTER, status=503)
