"""One page: its text blocks in reading order, its ruled tables, and its status (text | empty | scanned | garbled)."""

from __future__ import annotations

import glob
import os
import re
import shutil
from collections import Counter
from dataclasses import dataclass, field

import pymupdf

from pipeline.pdf.layout import Block, reading_order
from pipeline.pdf.options import PdfOptions
from pipeline.pdf.tables import page_tables
from pipeline.sandbox import is_memory_error

# whitespace + mediabox clip. NOT ligatures (expanded: "ﬁ" → "fi", so quotes match what a person types), NOT
# images (their bytes would be copied), NOT TEXT_CID_FOR_UNKNOWN_UNICODE (unmapped glyphs must come out as U+FFFD
# so that a garbled page can be told apart).
_FLAGS = pymupdf.TEXT_PRESERVE_WHITESPACE | pymupdf.TEXT_MEDIABOX_CLIP
_UNMAPPED = re.compile("[\ufffd\x00-\x08\x0b\x0c\x0e-\x1f\ue000-\uf8ff]")
_VECTOR_SCAN_PATHS = 200  # a page with no text but this many vector paths is a scan drawn as outlines
_FEW_CHARS = 20  # fewer characters over a page-sized image: a scan with a stamp or page number, not a text page


@dataclass(slots=True)
class RawPage:
    """What was read from one page, before headings are decided (they need the whole document)."""

    number: int  # 1-based
    status: str
    reason: str | None = None
    blocks: list[Block] = field(default_factory=list)
    sizes: Counter = field(default_factory=Counter)  # characters per font size
    num_chars: int = 0
    num_tables: int = 0
    height: float = 0.0  # of the page, for telling running headers and footers apart


def read_page(page: pymupdf.Page, options: PdfOptions) -> RawPage:
    """Read one page; a page that raises is `failed` with the reason (memory failures propagate)."""
    number = page.number + 1
    try:
        return _read(page, number, options)
    except Exception as e:  # noqa: BLE001 - a broken page must not lose the document
        if is_memory_error(e):
            raise
        return RawPage(number, "failed", f"page could not be read: {type(e).__name__}: {e}"[:300])


def _read(page: pymupdf.Page, number: int, options: PdfOptions) -> RawPage:
    tp = page.get_textpage(flags=_FLAGS)
    drawings = page.get_cdrawings() if options.tables else []
    tables = page_tables(drawings, tp.extractWORDS) if drawings else []
    raw = _blocks(tp, [t.bbox for t in tables], number)
    ocr_note = None
    if raw.num_chars < _FEW_CHARS:
        visual = _visual_content(page, drawings, raw.num_chars)
        if raw.num_chars == 0 and not visual:
            if page.parent.is_repaired and _content_missing(page):
                return RawPage(number, "failed", "the page's content is missing: the file is damaged (truncated?) "
                               "and was repaired without it")
            return RawPage(number, "empty", "the page has no text and no images")
        if visual:
            cause = "no text layer" if raw.num_chars == 0 else f"almost no text layer ({raw.num_chars} characters)"
            tessdata, missing = ocr_data(options.ocr_language)
            if not options.ocr or missing:
                why = [w for w, on in (("OCR is off (the ocr option)", not options.ocr), (missing, missing)) if on]
                raw.status, raw.reason = "scanned", f"{cause}: the page is {visual}; not OCRed: {' and '.join(why)}"
                return raw
            tp = page.get_textpage_ocr(flags=_FLAGS, language=options.ocr_language, dpi=300, full=True,
                                       tessdata=tessdata)
            raw = _blocks(tp, [], number)
            if raw.num_chars == 0:
                return RawPage(number, "scanned", f"{cause}: the page is {visual}; OCR found no text")
            tables, ocr_note = [], "text recognized by OCR (tesseract)"
    bad = sum(len(_UNMAPPED.findall(text)) for b in raw.blocks for text, *_ in b.lines)
    if bad >= options.garbled_ratio * raw.num_chars:
        share = round(100 * bad / raw.num_chars)
        return RawPage(number, "garbled", f"{share}% of the characters are unmapped glyphs (U+FFFD, control or "
                       "private-use codes): the text layer is unusable and was left out")
    raw.blocks += [Block(t.bbox, table=t.to_markdown()) for t in tables]
    raw.blocks = reading_order(raw.blocks, page.rect.width)
    raw.height = page.rect.height
    raw.num_tables = len(tables)
    raw.reason = ocr_note
    return raw


def _blocks(tp: pymupdf.TextPage, table_boxes: list[tuple], number: int) -> RawPage:
    """Text blocks of a text page (lines inside a table's bbox left out: the table renders them)."""
    raw = RawPage(number, "text")
    for b in tp.extractDICT()["blocks"]:
        if b["type"] != 0:
            continue
        right, width = b["bbox"][2], b["bbox"][2] - b["bbox"][0]
        lines = []
        for line in b["lines"]:
            spans = line["spans"]
            text = "".join(s["text"] for s in spans).strip()
            if not text:
                continue
            if table_boxes and _inside(line["bbox"], table_boxes):
                continue
            size = round(max(spans, key=lambda s: len(s["text"]))["size"] * 2) / 2
            lines.append((text, size, line["bbox"]))
            raw.sizes[size] += len(text)
            raw.num_chars += len(text)
        if lines:
            raw.blocks.append(Block(tuple(b["bbox"]), _with_breaks(lines, right, width)))
    return raw


def _with_breaks(lines: list[tuple], right: float, width: float) -> list[tuple[str, float, bool]]:
    """(text, size, bbox) → (text, size, breaks): does a new visual line follow this one?

    Lines on the same row (a TOC number and its title) continue each other; a row that stops well short of the
    block's right edge ends a line of its own, while one reaching it is a wrapped paragraph line.
    """
    out = []
    for i, (text, size, bbox) in enumerate(lines):
        if i + 1 < len(lines):
            nxt = lines[i + 1][2]
            if abs((nxt[1] + nxt[3]) - (bbox[1] + bbox[3])) < size and nxt[0] >= bbox[2] - 1:
                out.append((text, size, False))
                continue
        out.append((text, size, right - bbox[2] > max(0.2 * width, 8 * size)))
    return out


def _inside(bbox: tuple, boxes: list[tuple]) -> bool:
    cx, cy = (bbox[0] + bbox[2]) / 2, (bbox[1] + bbox[3]) / 2
    return any(x0 <= cx <= x1 and y0 <= cy <= y1 for x0, y0, x1, y1 in boxes)


def _visual_content(page: pymupdf.Page, drawings: list[dict], num_chars: int) -> str | None:
    """'an image' / 'vector graphics' when a (nearly) textless page still shows something, else None.

    With a few characters (a stamp, a page number) the images must cover half the page to count as a scan.
    """
    images = page.get_image_info()
    if num_chars > 0:
        area = abs(page.rect)
        covered = sum(abs(pymupdf.Rect(i["bbox"]) & page.rect) for i in images)
        return "an image" if area and covered >= 0.5 * area else None
    if images:
        return "an image" if len(images) == 1 else f"{len(images)} images"
    if len(drawings or page.get_cdrawings()) >= _VECTOR_SCAN_PATHS:
        return "vector graphics only"
    return None


def _content_missing(page: pymupdf.Page) -> bool:
    """True when the page names content streams but none of them can be read (lost to truncation)."""
    doc = page.parent
    kind, _ = doc.xref_get_key(page.xref, "Contents")
    if kind == "null":
        return False
    for xref in page.get_contents():
        try:
            if doc.xref_stream(xref):
                return False
        except Exception:  # noqa: BLE001, S112 - an unreadable stream counts as missing
            continue
    return True


def ocr_data(language: str) -> tuple[str | None, str | None]:
    """(tessdata folder or None to let PyMuPDF find it, None) when OCR can run, else (None, why not).

    MuPDF has Tesseract built in; it needs only the trained data: `$TESSDATA_PREFIX/<language>.traineddata`,
    or an installed `tesseract` whose data PyMuPDF locates itself.
    """
    prefix = os.environ.get("TESSDATA_PREFIX")
    if prefix and os.path.isfile(os.path.join(prefix, f"{language}.traineddata")):
        return prefix, None
    # Debian/Ubuntu's tesseract-ocr-<lang> packages: the data without the tesseract binary
    for found in sorted(glob.glob(f"/usr/share/tesseract-ocr/*/tessdata/{language}.traineddata"), reverse=True):
        return os.path.dirname(found), None
    if shutil.which("tesseract"):
        return None, None
    return None, f"tesseract is not installed (no {language}.traineddata in $TESSDATA_PREFIX)"
