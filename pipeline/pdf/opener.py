"""Opening a PDF: sniff it, decrypt it with a password when needed, and tell corrupt files apart."""

from __future__ import annotations

from pathlib import Path

import pymupdf

from pipeline.errors import CorruptPdf, EncryptedPdf

pymupdf.use_layout(False)  # NOTE: pymupdf 2.0 turns on its ONNX layout model at import; we never want it
pymupdf.TOOLS.mupdf_display_errors(False)  # MuPDF's repair chatter goes to warnings(), not stderr

PDF_MAGIC = b"%PDF-"
_SNIFF_BYTES = 1024  # the header may follow some junk; readers accept it within the first 1 KB


def looks_like_pdf(head: bytes) -> bool:
    return PDF_MAGIC in head[:_SNIFF_BYTES]


def open_pdf(source: str | Path | bytes, password: str | None = None) -> pymupdf.Document:
    """An open, authenticated PDF with at least one page. Raises CorruptPdf or EncryptedPdf."""
    name = "the PDF" if isinstance(source, bytes) else f"{Path(source).name!r}"
    if isinstance(source, bytes):
        head = source[:_SNIFF_BYTES]
    else:
        with open(source, "rb") as f:
            head = f.read(_SNIFF_BYTES)
    if not looks_like_pdf(head):
        what = "the file is empty" if not head else f"it starts with {head[:16]!r}"
        raise CorruptPdf(f"{name} is not a PDF: no %PDF- header in its first {_SNIFF_BYTES} bytes ({what})")
    try:
        doc = pymupdf.open(stream=source, filetype="pdf") if isinstance(source, bytes) else pymupdf.open(
            str(source), filetype="pdf")
    except Exception as e:  # noqa: BLE001 - pymupdf raises FileDataError, RuntimeError, ValueError …
        raise CorruptPdf(f"{name} cannot be opened as a PDF: {e}") from None
    if doc.needs_pass:
        if password is None:
            doc.close()
            raise EncryptedPdf(f"{name} is encrypted: a password is needed to open it (give it with --password)")
        if not doc.authenticate(password):
            doc.close()
            raise EncryptedPdf(f"{name} is encrypted and the password given does not open it")
    try:
        num_pages = doc.page_count
    except Exception as e:  # noqa: BLE001 - MuPDF: "Invalid number of pages" on a cut-off page tree
        num_pages, why = 0, f": {e}"
    else:
        why = ""
    if num_pages == 0:
        doc.close()
        raise CorruptPdf(f"{name} has no readable pages (damaged or truncated beyond repair){why}")
    return doc


def pdf_metadata(doc: pymupdf.Document) -> dict:
    """Title, author, page count and how the file was opened."""
    meta = doc.metadata or {}
    return {
        "title": (meta.get("title") or "").strip() or None,
        "author": (meta.get("author") or "").strip() or None,
        "page_count": doc.page_count,
        "encrypted": bool(doc.is_encrypted or meta.get("encryption")),
        "repaired": bool(doc.is_repaired),
    }
