"""Rows owned by a tenant, read through that tenant: another tenant's id is NotFound, exactly like a missing one."""

from typing import TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from pipeline.errors import NotFound

Row = TypeVar("Row")


def get_owned(session: Session, model: type[Row], tenant_id: str, row_id: str) -> Row:
    """The `model` row `row_id` of tenant `tenant_id`, or NotFound("no <model name in lower case> 'id'")."""
    row = session.scalar(select(model).where(model.id == row_id, model.tenant_id == tenant_id))
    if row is None:
        raise NotFound(f"no {model.__name__.lower()} {row_id!r}")
    return row
