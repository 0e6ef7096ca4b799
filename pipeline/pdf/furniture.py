"""Running headers and footers: a line repeated at the top or bottom of most pages is page furniture, not text.

Printed page numbers ("12", "Page 12 of 40", "iv") are the worst of it: the model could cite them instead of the
`[page N]` anchors. Only small lines (not larger than body text) in the top or bottom band of a page qualify.
"""

from __future__ import annotations

import re
from collections import Counter

from pipeline.pdf.page import RawPage

_BAND = 0.12  # the top and bottom 12 % of the page height
_MIN_PAGES = 4
_MIN_SHARE = 0.5  # of the text pages
_DIGITS = re.compile(r"\d+")
_ROMAN = re.compile(r"^[ivxlcdm]+$", re.I)


def _key(text: str, where: str) -> str:
    norm = _DIGITS.sub("#", " ".join(text.split()).lower())
    return f"{where}:#" if _ROMAN.match(norm) else f"{where}:{norm}"


def _edges(raw: RawPage):
    """(where, block, line index) of the first line of the top block and the last line of the bottom block."""
    text_blocks = [b for b in raw.blocks if b.table is None and b.lines]
    if not text_blocks or not raw.height:
        return []
    top = min(text_blocks, key=lambda b: b.bbox[1])
    bottom = max(text_blocks, key=lambda b: b.bbox[3])
    out = []
    if top.bbox[1] < _BAND * raw.height:
        out.append(("top", top, 0))
    if bottom.bbox[3] > (1 - _BAND) * raw.height:
        out.append(("bottom", bottom, len(bottom.lines) - 1))
    return out


def strip_running_lines(raws: list[RawPage], body_size: float | None) -> int:
    """Remove running headers/footers (in place) from text pages; returns how many lines were removed."""
    pages = [r for r in raws if r.status == "text"]
    if len(pages) < _MIN_PAGES:
        return 0
    counts: Counter = Counter()
    for raw in pages:
        counts.update({_key(b.lines[i][0], where) for where, b, i in _edges(raw)})
    running = {k for k, n in counts.items() if n >= max(_MIN_PAGES, _MIN_SHARE * len(pages))}
    removed = 0
    for raw in pages:
        for where, block, i in _edges(raw):
            text, size, _ = block.lines[i]
            if _key(text, where) in running and (body_size is None or size <= body_size):
                del block.lines[i]
                removed += 1
        raw.blocks = [b for b in raw.blocks if b.table is not None or b.lines]
    return removed
