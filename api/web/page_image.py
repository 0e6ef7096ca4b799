"""`GET /v1/documents/{id}/pages/{n}.png?q=QUOTE`: a cited page as an image, the quote highlighted (docs/web.md).

The page is rendered from the stored PDF in the same isolated child process extraction uses (pipeline.sandbox: a
fresh interpreter with time and memory limits), named by module path so this process never imports PyMuPDF. Images
are capped (`WHOLEDOC_PAGE_IMAGE_MAX_SIDE` pixels on the longer side) and cached in the blob store: the same page and
quote of the same document is rendered once. Tenant-scoped like every route: another tenant's document is 404.
"""

import hashlib
import tempfile
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from fastapi import Path as PathParam
from fastapi.concurrency import run_in_threadpool

from api.deps import TenantDep
from api.routes.common import DocumentId
from api.routes.conventions import operation
from pipeline.errors import BlobNotFound, Conflict, NotFound
from pipeline.logs import get_logger
from pipeline.records.db import transaction
from pipeline.records.documents import get_document
from pipeline.records.models import DocumentStatus
from pipeline.records.page_images import cached_image, remember_image
from pipeline.sandbox import run_isolated

log = get_logger(__name__)
router = APIRouter(prefix="/v1/documents", tags=["documents"])
RENDER = "pipeline.pdf.render:render_page"  # imported by the child only
RENDER_VERSION = "1"  # part of the cache key: bump when the rendering changes
TIMEOUT_S = 30.0
MEMORY_BYTES = 2 * 2**30  # RLIMIT_AS of the child: the interpreter and PyMuPDF map ~0.6 GB
MAX_QUOTE = 500
CACHE_CONTROL = "private, max-age=86400"

PNG = operation("getPageImage", "A page of a PDF as a PNG, a quote highlighted", status=200, codes=(404, 409))
PNG["responses"][200] = {"content": {"image/png": {"schema": {"type": "string", "format": "binary"}}},
                         "description": "the page, its longer side at most WHOLEDOC_PAGE_IMAGE_MAX_SIDE pixels; "
                                        "`X-Quote-Matches` says how many places of the quote were highlighted"}

PageNumber = Annotated[int, PathParam(ge=1, le=100_000, description="the page, 1-based")]
QuoteQuery = Annotated[str | None, Query(max_length=MAX_QUOTE, pattern=r"^[^\x00-\x1f\x7f]*$",
                                         description="words to highlight on the page (a citation's quote)")]


def _cache_key(sha256: str, page: int, quote: str, max_side: int) -> str:
    return hashlib.sha256(f"{RENDER_VERSION}\0{sha256}\0{page}\0{max_side}\0{quote}".encode()).hexdigest()


def _lookup(request: Request, tenant_id: str, document_id: str, page: int, quote: str):
    """(document facts, cache key, cached PNG bytes or None), or NotFound / Conflict."""
    store, max_side = request.app.state.blob_store, request.app.state.settings.page_image_max_side
    with request.app.state.sessions() as s:
        doc = get_document(s, tenant_id, document_id)
        if doc.kind != "pdf":
            raise Conflict(f"document {document_id} is a codebase: its citations name files, which have no page "
                           "images")
        if doc.status != DocumentStatus.READY:
            raise Conflict(f"document {document_id} is {doc.status}: pages are shown once it is ready")
        if doc.num_sections is not None and page > doc.num_sections:
            raise NotFound(f"document {document_id} has {doc.num_sections} pages; there is no page {page}")
        key = _cache_key(doc.sha256, page, quote, max_side)
        blob = cached_image(s, tenant_id, doc.id, key)
        facts = (doc.blob_key, doc.id)
    if blob is not None:
        try:
            return facts, key, store.get_bytes(blob)
        except BlobNotFound:
            pass  # swept or lost: render again
    return facts, key, None


def _render(request: Request, tenant_id: str, facts: tuple[str, str], key: str, page: int, quote: str):
    blob_key, document_id = facts
    store, settings = request.app.state.blob_store, request.app.state.settings
    with tempfile.TemporaryDirectory(prefix="wholedoc-page-") as tmp:
        path = Path(tmp) / "document.pdf"
        with path.open("wb") as f:
            store.copy_to(blob_key, f)
        rendered = run_isolated(RENDER, str(path), page, quote or None, settings.page_image_max_side,
                                timeout_s=TIMEOUT_S, memory_bytes=MEMORY_BYTES, block_modules=("pymupdf.layout",))
    ref = store.put_bytes(tenant_id, rendered["png"])
    store.add_ref(ref.key, document_id)
    with transaction(request.app.state.sessions) as s:
        remember_image(s, tenant_id, document_id, key, ref.key)
    log.info("page image rendered", document_id=document_id, page=page, matches=rendered["matches"],
             size_bytes=len(rendered["png"]))
    return rendered["png"], rendered["matches"]


@router.get("/{document_id}/pages/{page}.png", **PNG, response_class=Response)
async def page_image(document_id: DocumentId, page: PageNumber, request: Request, tenant: TenantDep,
                     q: QuoteQuery = None) -> Response:
    """The page rendered from the stored PDF (in an isolated child process), the quote's words highlighted."""
    quote = " ".join((q or "").split())
    facts, key, png = await run_in_threadpool(_lookup, request, tenant.id, document_id, page, quote)
    headers = {"Cache-Control": CACHE_CONTROL, "X-Page-Image-Cache": "hit" if png is not None else "miss"}
    if png is None:
        png, matches = await run_in_threadpool(_render, request, tenant.id, facts, key, page, quote)
        headers["X-Quote-Matches"] = str(matches)
    return Response(png, media_type="image/png", headers=headers)
