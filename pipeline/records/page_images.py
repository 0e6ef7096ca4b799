"""Rendered page images (what a citation link opens), cached in the blob store: a row maps a document's cache key
(page, quote, size, rendering version) to the blob holding its PNG (docs/web.md)."""

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from pipeline.records.models import PageImage


def cached_image(session: Session, tenant_id: str, document_id: str, cache_key: str) -> str | None:
    """The blob key of the cached image, or None."""
    return session.scalar(select(PageImage.blob_key).where(PageImage.tenant_id == tenant_id,
                                                           PageImage.document_id == document_id,
                                                           PageImage.cache_key == cache_key))


def remember_image(session: Session, tenant_id: str, document_id: str, cache_key: str, blob_key: str) -> None:
    """Record a rendered image; two renders racing on the same key keep the first row (the blobs are identical)."""
    try:
        with session.begin_nested():
            session.add(PageImage(tenant_id=tenant_id, document_id=document_id, cache_key=cache_key,
                                  blob_key=blob_key))
    except IntegrityError:
        pass


def image_blobs(session: Session, document_id: str) -> list[str]:
    """Every cached image's blob key of a document (released when the document is deleted)."""
    return list(session.scalars(select(PageImage.blob_key).where(PageImage.document_id == document_id)))
