"""Options of PDF extraction (what to extract) and of its isolation (how long, how much memory)."""

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class PdfOptions:
    """What PDF extraction does; the defaults suit whole-document prompts."""

    tables: bool = True  # ruled tables as Markdown (only pages whose drawings have ruling lines are examined)
    ocr: bool = False  # OCR pages without a text layer (needs `tesseract` on PATH)
    ocr_language: str = "eng"
    max_pages: int = 20_000  # more pages → PdfTooLarge before any page is read
    max_chars: int = 40_000_000  # extracted characters in total (≈ 10M tokens, far past the 1M window)
    garbled_ratio: float = 0.3  # share of unmapped glyphs (U+FFFD, controls, private use) that marks a page garbled

    def __post_init__(self):
        assert self.max_pages > 0 and self.max_chars > 0, f"caps must be positive: {self}"
        assert 0 < self.garbled_ratio <= 1, f"garbled_ratio must be in (0, 1]: {self.garbled_ratio}"


@dataclass(frozen=True, slots=True)
class IsolationLimits:
    """Limits of the child process that extracts one document."""

    timeout_s: float = 600.0  # the whole document
    page_timeout_s: float | None = 60.0  # one page (a pathological page is named in the error)
    memory_bytes: int = 3 * 2**30  # RLIMIT_AS of the child; pymupdf alone maps ~0.6 GB

    def __post_init__(self):
        assert self.timeout_s > 0 and self.memory_bytes > 2**28, f"limits too small to run at all: {self}"
