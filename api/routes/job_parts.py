"""A job's parts as the API shows them: a summary run in parts (a document over the window, docs/over-window.md)."""

from sqlalchemy.orm import Session

from api.schemas import JobPartPublic
from pipeline.records.models import FINAL_STATES, Job
from pipeline.records.parts import parts_of


def job_parts_public(session: Session, job: Job) -> list[JobPartPublic] | None:
    """Each part's span and progress, in order; None for a job not run in parts. A part that was running when its
    job ended (cancelled, failed) shows as `stopped`."""
    if job.kind != "summarize" or (job.params or {}).get("over_window") != "sections":
        return None
    out = [JobPartPublic.model_validate(p) for p in parts_of(session, job.id)]
    if job.state in FINAL_STATES:
        out = [p.model_copy(update={"state": "stopped"}) if p.state == "running" else p for p in out]
    return out or None
