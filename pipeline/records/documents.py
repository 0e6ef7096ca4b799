"""Documents of a tenant: every read goes through the tenant, so another tenant's id is NotFound."""

from collections.abc import Callable
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from pipeline.errors import NotFound
from pipeline.records.db import transaction
from pipeline.records.models import Document, DocumentStatus
from pipeline.records.owned import get_owned
from pipeline.records.pages import Page, page
from pipeline.records.types import utcnow


def create_document(session: Session, tenant_id: str, *, kind: str, blob_key: str, sha256: str, size_bytes: int,
                    filename: str | None = None, media_type: str | None = None) -> Document:
    doc = Document(tenant_id=tenant_id, kind=kind, blob_key=blob_key, sha256=sha256, size_bytes=size_bytes,
                   filename=filename, media_type=media_type, status=DocumentStatus.PENDING)
    session.add(doc)
    session.flush()
    return doc


def get_document(session: Session, tenant_id: str, document_id: str) -> Document:
    return get_owned(session, Document, tenant_id, document_id)


def list_documents(session: Session, tenant_id: str, *, limit: int = 50, after: str | None = None) -> Page[Document]:
    """A page of the tenant's documents, newest first (pipeline.records.pages)."""
    return page(session, select(Document).where(Document.tenant_id == tenant_id), Document, tenant_id, limit=limit,
                after=after)


def find_by_sha256(session: Session, tenant_id: str, sha256: str) -> Document | None:
    """The tenant's newest document whose upload had these bytes (its sha256), or None."""
    return session.scalar(select(Document).where(Document.tenant_id == tenant_id, Document.sha256 == sha256)
                          .order_by(Document.created_at.desc(), Document.id.desc()).limit(1))


def delete_document(session: Session, tenant_id: str, document_id: str) -> Document:
    """Delete the row (its jobs and results cascade); returns it so the caller can release its blobs."""
    doc = get_document(session, tenant_id, document_id)
    session.delete(doc)
    session.flush()
    return doc


def mark_document_ready(session: Session, document_id: str, *, text_blob_key: str, num_sections: int,
                        num_tokens: int | None, title: str | None = None) -> Document:
    doc = session.get(Document, document_id)
    if doc is None:
        raise NotFound(f"no document {document_id!r}")
    doc.status, doc.error = DocumentStatus.READY, None
    doc.text_blob_key, doc.num_sections, doc.num_tokens, doc.title = text_blob_key, num_sections, num_tokens, title
    session.flush()
    return doc


def mark_document_failed(session: Session, document_id: str, reason: str) -> Document | None:
    doc = session.get(Document, document_id)
    if doc is not None:
        doc.status, doc.error = DocumentStatus.FAILED, reason
        session.flush()
    return doc


def warm_prefix_once(sessions, document_id: str, warm: Callable[[], object], max_age: timedelta) -> bool:
    """Run `warm()` (one request that puts the document's prefix into the endpoint's cache) unless it ran less than
    max_age ago; True if it ran now. The document's row stays locked meanwhile, so concurrent callers wait for the
    one warm-up and then skip it (PostgreSQL; SQLite has one writer anyway). An exception from `warm` propagates
    and records nothing."""
    with transaction(sessions) as s:
        doc = s.execute(select(Document).where(Document.id == document_id).with_for_update()).scalar_one()
        if doc.prefix_warmed_at is not None and utcnow() - doc.prefix_warmed_at < max_age:
            return False
        warm()
        doc.prefix_warmed_at = utcnow()
    return True
