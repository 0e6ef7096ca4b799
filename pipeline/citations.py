"""Citations in model answers: parse `[p. 12: "quote"]`, `[pp. 12-13: "quote"]`, `[src/a.py:120: "quote"]`
(and `[doc 2, …]` in digests), then check each quote against the cited page or file.

Status: `verified` (the normalized quote occurs there), `unverified` (no quote, or the quote is not there —
`found_in` names where it does occur, if anywhere), `invalid` (no such page, file or document). Every citation
found in the answer is returned, with its span, so none is ever silently kept or dropped.
"""

from __future__ import annotations

import bisect
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, replace

from pipeline.document import ExtractedDocument, Kind, Section
from pipeline.prompts.sanitize import strip_invisible

MAX_PAGE_RANGE = 10  # a range wider than this is not a citation of a passage
_QUOTE = r"""(?:\s*:\s*(?P<q>"(?P<qs>[\s\S]{0,2000}?)"|“(?P<qc>[\s\S]{0,2000}?)”))?\s*\]"""
CITATION = re.compile(
    r"\[\s*(?:doc(?:ument)?\s*(?P<doc>\d+)\s*,\s*)?"
    r"(?:(?:pp?\.|pages?)\s*(?P<p1>\d+)(?:\s*[-–—]\s*(?P<p2>\d+))?"
    r"|(?P<path>[\w.\-/\\+@~]*[./][\w.\-/\\+@~]*):(?P<l1>\d+)(?:\s*[-–—]\s*(?P<l2>\d+))?)" + _QUOTE,
    re.IGNORECASE,
)
# page- or file-like brackets that CITATION did not accept (e.g. `[p. 12, "quote"]`, `[page 3 "x"]`)
LOOSE = re.compile(
    r"\[\s*(?:doc(?:ument)?\s*\d+\s*,\s*)?(?:(?:pp?\.|pages?)\s*(?P<anchor>\d+)"
    r"|(?P<file>[\w.\-/]+\.\w+)\s*(?::|,\s*line)\s*\d+)[^\]\n]{0,300}\]",
    re.IGNORECASE,
)
MALFORMED = 'malformed citation; the format is [p. 12: "quote"] or [path/file.py:120: "quote"]'
# quotes, apostrophes and dashes of every shape to ASCII; hyphens and whitespace are dropped before comparing
_PUNCT = str.maketrans({c: "'" for c in "‘’‚‛′`´"} | {c: '"' for c in "“”„‟″«»"} | {c: "-" for c in "‐‑‒–—―−"})
_DROP = re.compile(r"[\s\-]+")
_LINE_NUMBER = re.compile(r"^\s*\d+ \| ", re.MULTILINE)  # `  12 | code` from the codebase packer
_PAGE_MARKER = re.compile(r"^\[page \d+\][ \t]*$", re.MULTILINE)  # the PDF extractor's anchor line
_ELLIPSIS = re.compile(r"\s*(?:\.\.\.|…|\[\.\.\.\])\s*")


@dataclass(frozen=True)
class Citation:
    """One citation in an answer: `start:end` is its span there; `anchor` a page number or a file path."""

    start: int
    end: int
    raw: str
    anchor: str
    quote: str | None
    status: str = "unchecked"
    reason: str | None = None
    doc: int | None = None  # 1-based document index (digests)
    page_end: int | None = None  # last page of a [pp. a-b] range
    line: int | None = None  # codebase: the cited line (and line_end for a range)
    line_end: int | None = None
    found_in: tuple[str, ...] = ()  # where the quote does occur, when not (only) where cited
    found_line: int | None = None  # codebase: the line the quote starts on


def canonical(text: str) -> str:
    """The comparison form: NFKC (ligatures), casefolded, quotes/dashes unified, whitespace and hyphens dropped
    (so line breaks, re-wrapping and hyphenation across lines do not matter)."""
    text = unicodedata.normalize("NFKC", strip_invisible(text)).casefold().translate(_PUNCT)
    return _DROP.sub("", text)


def parse_citations(answer: str) -> list[Citation]:
    """Every citation in `answer`, in order: well-formed ones unchecked, malformed ones already `invalid`."""
    out = []
    for m in CITATION.finditer(answer):
        quote = m.group("qs") if m.group("qs") is not None else m.group("qc")
        doc = int(m.group("doc")) if m.group("doc") else None
        if m.group("p1"):
            p1 = int(m.group("p1"))
            p2 = int(m.group("p2")) if m.group("p2") else None
            out.append(Citation(m.start(), m.end(), m.group(0), str(p1), quote, doc=doc, page_end=p2))
        else:
            l1 = int(m.group("l1"))
            l2 = int(m.group("l2")) if m.group("l2") else None
            out.append(Citation(m.start(), m.end(), m.group(0), m.group("path").replace("\\", "/"), quote, doc=doc,
                                line=l1, line_end=l2))
    taken = [(c.start, c.end) for c in out]
    for m in LOOSE.finditer(answer):  # looks like a citation but is not in the format: flag it, never skip it
        if not any(a <= m.start() < b for a, b in taken):
            anchor = m.group("anchor") or m.group("file")
            out.append(Citation(m.start(), m.end(), m.group(0), anchor, None, status="invalid", reason=MALFORMED))
    return sorted(out, key=lambda c: c.start)


def verify_citations(answer: str, docs: ExtractedDocument | Sequence[ExtractedDocument]) -> list[Citation]:
    """Parse and check every citation against `docs` (one document, or the digest's list, numbered from 1)."""
    docs = [docs] if isinstance(docs, ExtractedDocument) else list(docs)
    return [_verify(c, docs) for c in parse_citations(answer)]


def flagged(citations: Sequence[Citation]) -> list[Citation]:
    """The citations a person should look at: everything not verified."""
    return [c for c in citations if c.status != "verified"]


def _with(c: Citation, status: str, reason: str | None = None, **kw) -> Citation:
    return replace(c, status=status, reason=reason, **kw)


def _verify(c: Citation, docs: list[ExtractedDocument]) -> Citation:
    if c.status == "invalid":  # malformed: already flagged by the parser
        return c
    if c.doc is None and len(docs) > 1:
        return _with(c, "invalid", "a digest citation must name its document: [doc N, …]")
    index = (c.doc or 1) - 1
    if not 0 <= index < len(docs):
        return _with(c, "invalid", f"there is no document {c.doc} (there are {len(docs)})")
    doc = docs[index]
    is_page = c.line is None
    if is_page != (doc.kind == Kind.PDF):
        return _with(c, "invalid", f"a {'page' if is_page else 'file'} citation on a {doc.kind.value} document")
    cited = _pages(doc, c) if is_page else [s for s in doc.sections if s.anchor == c.anchor]
    if isinstance(cited, str):
        return _with(c, "invalid", cited)
    if not cited:
        return _with(c, "invalid", f"the document has no file {c.anchor}")
    if not c.quote or not canonical(c.quote):
        return _with(c, "unverified", "no quote to check")
    pieces = [p for p in (canonical(x) for x in _ELLIPSIS.split(c.quote)) if p]
    if _find(pieces, "".join(_body(s, doc.kind) for s in cited)) >= 0:
        line = _found_line(cited[0], pieces[0]) if not is_page else None
        return _with(c, "verified", found_line=line)
    elsewhere = tuple(s.anchor for s in doc.sections if s not in cited and _find(pieces, _body(s, doc.kind)) >= 0)
    where = f"; it occurs on {'page' if is_page else 'file'} {', '.join(elsewhere[:5])}" if elsewhere else ""
    return _with(c, "unverified", f"the quote is not on the cited {'page' if is_page else 'file'}{where}",
                 found_in=elsewhere)


def _pages(doc: ExtractedDocument, c: Citation) -> list[Section] | str:
    first, last = int(c.anchor), c.page_end or int(c.anchor)
    if last < first or last - first >= MAX_PAGE_RANGE:
        return f"page range {first}-{last} is not a passage (at most {MAX_PAGE_RANGE} pages, in order)"
    by_anchor = {s.anchor: s for s in doc.sections}
    missing = [p for p in range(first, last + 1) if str(p) not in by_anchor]
    if missing:
        return f"the document has no page {missing[0]} (it has {len(doc.sections)} pages)"
    return [by_anchor[str(p)] for p in range(first, last + 1)]


def _body(s: Section, kind: Kind) -> str:
    return canonical(_PAGE_MARKER.sub("", s.text) if kind == Kind.PDF else _LINE_NUMBER.sub("", s.text))


def _find(pieces: list[str], haystack: str) -> int:
    """Index of the first piece when all pieces occur in order (an elided quote "a … b"), else -1."""
    pos = start = -1
    for piece in pieces:
        pos = haystack.find(piece, pos + 1)
        if pos < 0:
            return -1
        start = pos if start < 0 else start
        pos += len(piece) - 1
    return start


def _found_line(s: Section, first_piece: str) -> int | None:
    """The 1-based file line where the quote starts (the packer's `===== path =====` header is line 0)."""
    lines = _LINE_NUMBER.sub("", s.text).split("\n")
    offset = 1 if lines and lines[0].startswith("=====") else 0
    ends, total = [], 0
    for line in lines[offset:]:
        total += len(canonical(line))
        ends.append(total)
    pos = "".join(canonical(x) for x in lines[offset:]).find(first_piece)
    return None if pos < 0 else bisect.bisect_right(ends, pos) + 1
