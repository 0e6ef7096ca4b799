"""What a tenant is using now: its active LLM jobs, and the tokens its results consumed since a point in time.

The API's admission control reads these (the limits themselves are the API's settings). Call `lock_tenant`
first in the transaction that then creates the job: on PostgreSQL it serialises admissions per tenant, so
two API processes can never both admit the job that goes over a cap.
"""

from datetime import UTC, datetime, time, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from pipeline.records.models import Job, JobKind, JobState, Result, Tenant

LLM_KINDS = (JobKind.SUMMARIZE, JobKind.ANSWER, JobKind.CORPUS_ANSWER)
ACTIVE_STATES = (JobState.QUEUED, JobState.RUNNING)


def lock_tenant(session: Session, tenant_id: str) -> None:
    """Row-lock the tenant until the transaction ends (SELECT … FOR UPDATE; SQLite has one writer anyway)."""
    session.execute(select(Tenant.id).where(Tenant.id == tenant_id).with_for_update())


def active_llm_jobs(session: Session, tenant_id: str | None) -> int:
    """The tenant's (None: every tenant's) summarize / answer jobs that are queued or running."""
    where = [Job.kind.in_(LLM_KINDS), Job.state.in_(ACTIVE_STATES)]
    if tenant_id is not None:
        where.append(Job.tenant_id == tenant_id)
    return session.scalar(select(func.count()).select_from(Job).where(*where)) or 0


# any constant: the key of the transaction-scoped PostgreSQL advisory lock that serialises global admissions
ADMISSION_LOCK = 0x77686F6C65646F63


def lock_admissions(session: Session) -> None:
    """Serialise LLM-job admissions of all tenants until the transaction ends (PostgreSQL advisory lock; SQLite
    has one writer anyway), so two API processes cannot both admit the job that goes over a global cap."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(select(func.pg_advisory_xact_lock(ADMISSION_LOCK)))


def tokens_used_since(session: Session, tenant_id: str, since: datetime) -> int:
    """Tokens the tenant's results stored since `since`: prompt tokens not served from the prefix cache, plus
    completion tokens (`usage` as the inference client recorded it; a missing count is 0)."""
    usage = Result.usage
    prompt = func.coalesce(usage["prompt_tokens"].as_integer(), 0)
    cached = func.coalesce(usage["cached_tokens"].as_integer(), 0)
    completion = func.coalesce(usage["completion_tokens"].as_integer(), 0)
    total = session.scalar(select(func.sum(prompt - cached + completion)).where(
        Result.tenant_id == tenant_id, Result.created_at >= since))
    return int(total or 0)


def day_start(now: datetime) -> datetime:
    """Midnight UTC of `now`'s day (a daily budget counts from here)."""
    return datetime.combine(now.astimezone(UTC).date(), time(0), tzinfo=UTC)


def next_day_start(now: datetime) -> datetime:
    return day_start(now) + timedelta(days=1)
