"""Results of a tenant, newest first (pipeline.records.pages); one result is read with jobs.get_result."""

from sqlalchemy import select
from sqlalchemy.orm import Session

from pipeline.records.models import Result
from pipeline.records.pages import Page, page


def list_results(session: Session, tenant_id: str, *, document_id: str | None = None, limit: int = 50,
                 after: str | None = None) -> Page[Result]:
    q = select(Result).where(Result.tenant_id == tenant_id)
    if document_id:
        q = q.where(Result.document_id == document_id)
    return page(session, q, Result, tenant_id, limit=limit, after=after)
