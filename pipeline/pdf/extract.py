"""A whole PDF → ExtractedDocument: every page opens with its `[page N]` anchor, then headings, text and tables."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pymupdf

from pipeline.document import ExtractedDocument, Kind, Section
from pipeline.errors import CorruptPdf, NoTextLayer, PdfTooLarge
from pipeline.pdf.furniture import strip_running_lines
from pipeline.pdf.headings import Headings
from pipeline.pdf.opener import open_pdf, pdf_metadata
from pipeline.pdf.options import IsolationLimits, PdfOptions
from pipeline.pdf.page import RawPage, read_page
from pipeline.sandbox import run_isolated

_ITEM = re.compile(r"^(?:[•◦▪‣∙·\-–*]\s|\(?\d{1,3}[.)]\s|\(?[a-z][.)]\s)")  # a list item starts its own line
_SOFT_HYPHEN = re.compile(r"(?:^|[\s(])[^\s\-]*[a-z]-$")  # a word broken at the line end, not a compound
_LEADERS = re.compile(r"[ \t]*(?:\.[ \t]*){4,}")
_LEADER_END = re.compile(r"(?:\.[ \t]*){4,}\S+$")  # "Title . . . . 12": a TOC row ends there
DEFAULT_OPTIONS = PdfOptions()
DEFAULT_LIMITS = IsolationLimits()
_NOTES = {
    "empty": "[no text: empty page]",
    "scanned": "[no text: scanned page without a text layer]",
    "garbled": "[no text: the page's text layer is garbled]",
    "failed": "[no text: the page could not be read]",
}


def anchor(page: int) -> str:
    """The marker line that opens page `page`'s text; the model cites it as [p. N: "quote"]."""
    return f"[page {page}]"


def extract_pdf(
    source: str | Path | bytes,
    *,
    password: str | None = None,
    options: PdfOptions = DEFAULT_OPTIONS,
    progress: Callable[[int], None] | None = None,
) -> ExtractedDocument:
    """Extract a PDF in this process. `progress(page)` is called before each page (1-based).

    Raises EncryptedPdf, CorruptPdf, PdfTooLarge, or NoTextLayer when no page yields text.
    """
    pymupdf.TOOLS.reset_mupdf_warnings()  # NOTE: MuPDF keeps every warning of the process otherwise
    with open_pdf(source, password) as doc:
        meta = pdf_metadata(doc)
        if doc.page_count > options.max_pages:
            raise PdfTooLarge(f"the PDF has {doc.page_count} pages; the limit is {options.max_pages}")
        toc = doc.get_toc(simple=True)
        raws: list[RawPage] = []
        num_chars = 0
        for page in doc:
            if progress is not None:
                progress(page.number + 1)
            raw = read_page(page, options)
            num_chars += raw.num_chars
            if num_chars > options.max_chars:
                raise PdfTooLarge(f"the PDF's text passes the {options.max_chars:,}-character cap at page {raw.number}")
            raws.append(raw)
    _refuse_textless(raws)
    sizes = sum((r.sizes for r in raws), Counter())
    num_running = strip_running_lines(raws, sizes.most_common(1)[0][0] if sizes else None)
    headings = Headings.from_toc(toc) or Headings.from_sizes(sizes)
    sections = _render(raws, headings)
    statuses = Counter(s.status for s in sections)
    meta.update(
        headings="toc" if headings.toc else "font-size",
        pages_by_status=dict(sorted(statuses.items())),
        num_tables=sum(r.num_tables for r in raws),
        running_lines_removed=num_running,
    )
    return ExtractedDocument(Kind.PDF, "\n".join(s.text for s in sections), tuple(sections), meta)


def extract_pdf_isolated(
    path: str | Path,
    *,
    password: str | None = None,
    options: PdfOptions = DEFAULT_OPTIONS,
    limits: IsolationLimits = DEFAULT_LIMITS,
) -> ExtractedDocument:
    """`extract_pdf` in a child process with `limits`; a timeout, memory failure or crash names its page."""
    return run_isolated(
        extract_pdf, str(path), password=password, options=options, with_progress=True,
        block_modules=("pymupdf.layout",),  # NOTE: pymupdf imports its ONNX layout model if it can; we never use it
        timeout_s=limits.timeout_s, memory_bytes=limits.memory_bytes, unit_timeout_s=limits.page_timeout_s,
    )


def _render(raws: list[RawPage], headings: Headings) -> list[Section]:
    sections = []
    current: str | None = None  # the heading in effect (a page without one inherits it)
    for raw in raws:
        parts = [anchor(raw.number)]
        outline = headings.page_titles(raw.number)
        pending, found = list(outline), []
        if raw.status != "text":
            parts.append(_NOTES[raw.status])
        for block in raw.blocks:
            if block.table is not None:
                parts.append(block.table)
                continue
            parts += _render_block(block.lines, raw.number, headings, pending, found)
        if pending:  # TOC titles not found on their page: open the page with them
            parts[1:1] = [f"{'#' * lvl} {title}" for lvl, title in pending]
        # The page's title: its first outline entry, else its first heading, else the one in effect. Only headings
        # count (a paragraph that starts with "#", such as a "#!" line of code, is not one), and a title is one line.
        first = outline[0][1] if outline else next(iter(found), None)
        current = " ".join(first.split()) if first else current
        sections.append(Section(raw.number - 1, str(raw.number), raw.status, "\n\n".join(parts) + "\n",
                                title=current, reason=raw.reason))
    return sections


def _render_block(lines: list[tuple[str, float, bool]], page: int, headings: Headings, pending: list,
                  found: list[str]) -> list[str]:
    """A block's lines as paragraphs and `#` headings (a heading line splits its block); heading texts go to found."""
    out: list[str] = []
    para: list[str] = []
    prev_level: int | None = None
    i = 0
    while i < len(lines):
        text, size, breaks = lines[i]
        level = headings.level(page, text, size, pending)
        if level is None and headings.toc and i + 1 < len(lines):
            level = headings.starts_title(text, lines[i + 1][0], pending)
            if level is not None:
                text = f"{text} {lines[i + 1][0]}"
                i += 1
        if level is None:
            para.append((text, breaks))
        else:
            if para:
                out.append(_join(para))
                para = []
            if prev_level == level and not headings.toc:
                out[-1] += " " + text  # a size-based heading broken over lines
                found[-1] += " " + text
            else:
                out.append(f"{'#' * level} {text}")
                found.append(text)
        prev_level = level
        i += 1
    if para:
        out.append(_join(para))
    return out


def _join(lines: list[tuple[str, bool]]) -> str:
    """A block's lines as text: wrapped lines joined by a space (hyphenated words rejoined), short lines and
    list items kept on their own line; dot leaders ("Title . . . . 12") shortened to " … "."""
    out = lines[0][0]
    for (prev, breaks), (line, _) in zip(lines, lines[1:]):
        if breaks or _ITEM.match(line) or _LEADER_END.search(prev):
            out += "\n" + line
        elif prev.endswith("-") and _SOFT_HYPHEN.search(prev) and line[:1].islower():
            out = out[:-1] + line  # "manip-" + "ulation"; compounds ("state-of-the-") keep their hyphen
        elif prev.endswith("-"):
            out += line
        else:
            out += " " + line
    return _LEADERS.sub(" … ", out) if ". ." in out or "...." in out else out


def _refuse_textless(raws: list[RawPage]) -> None:
    """No page with text: a clear error naming the page count and why, never an empty document."""
    if any(r.status == "text" for r in raws):
        return
    if all(r.status == "failed" for r in raws):
        if len(raws) == 1:
            raise CorruptPdf(f"its one page could not be read: {raws[0].reason}")
        raise CorruptPdf(f"none of the {len(raws)} pages could be read; page 1: {raws[0].reason}")
    by = Counter(r.status for r in raws)
    why = "; ".join(f"{n} {s}" for s, n in sorted(by.items()))
    example = next(r for r in raws if r.status != "empty") if len(by) > 1 or "empty" not in by else raws[0]
    where = "its one page" if len(raws) == 1 else f"any of the {len(raws)} pages"
    raise NoTextLayer(f"no text in {where} ({why}); e.g. page {example.number}: {example.reason}")
