"""PDF extraction with PyMuPDF: page anchors, headings, ruled tables, reading order, per-page status."""

from pipeline.pdf.extract import DEFAULT_LIMITS, DEFAULT_OPTIONS, anchor, extract_pdf, extract_pdf_isolated
from pipeline.pdf.opener import looks_like_pdf
from pipeline.pdf.options import IsolationLimits, PdfOptions

__all__ = [
    "DEFAULT_LIMITS",
    "DEFAULT_OPTIONS",
    "IsolationLimits", "PdfOptions", "anchor", "extract_pdf", "extract_pdf_isolated", "looks_like_pdf",
]
