"""Reading order of a page's blocks: one column top to bottom, or two columns left then right within each band."""

from __future__ import annotations

from dataclasses import dataclass, field

_MAX_BLOCKS = 400  # the gutter search is quadratic; pages with more blocks are read top to bottom


@dataclass(slots=True)
class Block:
    """A text block or a table (its Markdown), with its bbox on the page.

    `lines`: (text, font size, breaks) where `breaks` says the line ends short of the block's right edge, so
    the next line starts a new line (a list item, a TOC entry, code) rather than continuing a wrapped paragraph.
    """

    bbox: tuple[float, float, float, float]
    lines: list[tuple[str, float, bool]] = field(default_factory=list)
    table: str | None = None


def reading_order(blocks: list[Block], page_width: float) -> list[Block]:
    """Blocks in reading order: two-column pages are detected by a gutter that no side-by-side block crosses.

    Blocks that cross the gutter (titles, wide figures, tables) split the page into bands; within a band the
    left column is read before the right one. Pages without such a gutter are read top to bottom.
    """
    if len(blocks) < 3 or len(blocks) > _MAX_BLOCKS:
        return sorted(blocks, key=_yx)
    gutter = _gutter(blocks, page_width)
    if gutter is None:
        return sorted(blocks, key=_yx)
    out: list[Block] = []
    left: list[Block] = []
    right: list[Block] = []
    for b in sorted(blocks, key=_yx):
        if b.bbox[2] <= gutter:
            left.append(b)
        elif b.bbox[0] >= gutter:
            right.append(b)
        else:  # spans the gutter: finish the band above it
            out += left + right
            left, right = [], []
            out.append(b)
    return out + left + right


def _gutter(blocks: list[Block], page_width: float) -> float | None:
    """The x of a column gutter in the middle of the page, or None for a single-column page."""
    lo, hi = page_width * 0.25, page_width * 0.75
    candidates = sorted({b.bbox[2] + 0.5 for b in blocks if lo <= b.bbox[2] <= hi})
    total = sum(b.bbox[3] - b.bbox[1] for b in blocks) or 1.0
    best: tuple[float, float] | None = None
    for x in candidates:
        left = right = cross = 0.0
        for b in blocks:
            h = b.bbox[3] - b.bbox[1]
            if b.bbox[2] <= x:
                left += h
            elif b.bbox[0] >= x:
                right += h
            else:
                cross += h
        if left < 0.15 * total or right < 0.15 * total or cross > 0.5 * total:
            continue
        if best is None or cross < best[1]:
            best = (x, cross)
    if best is None or not _side_by_side(blocks, best[0]):
        return None
    return best[0]


def _side_by_side(blocks: list[Block], x: float) -> bool:
    """True when some block left of x and some block right of x share a vertical range (real columns)."""
    lefts = [b.bbox for b in blocks if b.bbox[2] <= x]
    rights = [b.bbox for b in blocks if b.bbox[0] >= x]
    return any(a[1] < b[3] and b[1] < a[3] for a in lefts for b in rights)


def _yx(b: Block) -> tuple[float, float]:
    return (round(b.bbox[1]), b.bbox[0])
