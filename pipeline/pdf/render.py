"""One PDF page as a PNG with a quote's words highlighted: what a citation link opens (docs/web.md).

Runs inside the isolated child (`pipeline.sandbox.run_isolated("pipeline.pdf.render:render_page", ...)`), like
extraction, so a hostile page can cost only the child's time and memory. The image is capped: its longer side is at
most `max_side` pixels.
"""

from __future__ import annotations

import re

import pymupdf

from pipeline.errors import NotFound
from pipeline.pdf.opener import open_pdf
from pipeline.words import plural

MAX_QUOTE = 500  # characters of the quote searched for
_WORDS = 8  # when the whole quote is not found: its first and last this many words
HIGHLIGHT = (1.0, 0.85, 0.0)  # the highlight's fill (yellow), drawn under the text


def _hits(page: pymupdf.Page, quote: str) -> list:
    quote = " ".join(quote.split())[:MAX_QUOTE]
    if not quote:
        return []
    found = page.search_for(quote, quads=True)
    if found:
        return found
    words = re.findall(r"\S+", quote)
    if len(words) <= _WORDS:
        return []
    return page.search_for(" ".join(words[:_WORDS]), quads=True) + page.search_for(" ".join(words[-_WORDS:]),
                                                                                  quads=True)


def render_page(path: str, page: int, quote: str | None = None, max_side: int = 1400) -> dict:
    """Page `page` (1-based) of the PDF at `path`: {"png": bytes, "width", "height", "matches"}, the quote's matches
    (the places on the page where it, or its first or last words, were found) drawn as highlights. Plain types only:
    unpickling a class of this module would import PyMuPDF into the caller. Raises NotFound for a page the PDF does
    not have (and the opener's CorruptPdf / EncryptedPdf)."""
    with open_pdf(path) as doc:
        if not 1 <= page <= doc.page_count:
            raise NotFound(f"the document has {plural(doc.page_count, 'page')}; there is no page {page}")
        p = doc[page - 1]
        hits = _hits(p, quote) if quote else []
        for quad in hits:
            annot = p.add_highlight_annot(quad)
            annot.set_colors(stroke=HIGHLIGHT)
            annot.update()
        longest = max(p.rect.width, p.rect.height) or 1
        scale = min(max_side / longest, 4.0)
        pix = p.get_pixmap(matrix=pymupdf.Matrix(scale, scale), annots=True, alpha=False)
        return {"png": pix.tobytes("png"), "width": pix.width, "height": pix.height, "matches": len(hits)}
