"""Cursor pages of a tenant's rows, newest first: ordered by (created_at, id) descending, a page continues strictly
after the row its `after` id names. A row created between two calls is newer than every row already listed, so it
never shifts a later page (no duplicates, no skips); only a new first page shows it.
"""

from dataclasses import dataclass
from typing import Generic, TypeVar

from sqlalchemy import Select, and_, or_, select
from sqlalchemy.orm import Session

from pipeline.errors import InvalidCursor

Row = TypeVar("Row")


@dataclass(frozen=True)
class Page(Generic[Row]):
    rows: list[Row]
    has_more: bool

    @property
    def last_id(self) -> str | None:
        return self.rows[-1].id if self.rows else None


def page(session: Session, query: Select, model: type[Row], tenant_id: str, *, limit: int, after: str | None
         ) -> Page[Row]:
    """Up to `limit` rows of `query` (already filtered to the tenant) after the row `after`; InvalidCursor when the
    tenant has no such row (another tenant's id reads exactly like an unknown one)."""
    if after is not None:
        cursor = session.execute(select(model.created_at, model.id)
                                 .where(model.id == after, model.tenant_id == tenant_id)).first()
        if cursor is None:
            raise InvalidCursor(f"after: there is no {model.__name__.lower()} {after!r} to continue from (unknown, or "
                                "deleted since the last page); list again from the first page, without `after`")
        query = query.where(or_(model.created_at < cursor.created_at,
                                and_(model.created_at == cursor.created_at, model.id < cursor.id)))
    rows = list(session.scalars(query.order_by(model.created_at.desc(), model.id.desc()).limit(limit + 1)))
    return Page(rows[:limit], len(rows) > limit)
