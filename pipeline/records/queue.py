"""A queued job's place in its queue: 1 + the queued jobs of the same queue sent before it (every tenant's: the
workers serve them in that order). The web page and the job's events show it (docs/web.md)."""

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from pipeline.records.models import Job, JobState


def queue_position(session: Session, job: Job, kinds: tuple[str, ...]) -> int | None:
    """`job`'s position among the queued jobs of `kinds` (its queue's kinds), or None when it is not queued."""
    if job.state != JobState.QUEUED:
        return None
    ahead = session.scalar(select(func.count()).select_from(Job).where(
        Job.state == JobState.QUEUED, Job.kind.in_(kinds), Job.id != job.id,
        or_(Job.queued_at < job.queued_at, and_(Job.queued_at == job.queued_at, Job.id < job.id))))
    return 1 + int(ahead or 0)
