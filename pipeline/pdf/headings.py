"""Headings: from the outline (TOC) when the PDF has one, else from font sizes larger than the body text."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

_WS = re.compile(r"\s+")
_NUMBERING = re.compile(r"^(?:\d+(?:\.\d+)*\.?|[ivxlc]+\.|[a-z]\.|§)\s+")
_NON_WORD = re.compile(r"[\W_]+")
_MAX_HEADING_CHARS = 200
_MAX_LEVEL = 4


def normalize(text: str) -> str:
    return _WS.sub(" ", text).strip().lower()


def title_key(text: str) -> str:
    """What a TOC title and a heading line are compared by: no numbering prefix, case, spaces or punctuation."""
    norm = normalize(text)
    return _NON_WORD.sub("", _NUMBERING.sub("", norm)) or _NON_WORD.sub("", norm)


@dataclass(slots=True)
class Headings:
    """Decides which lines are headings and at which level (1 = `#`).

    TOC mode: a line (or two consecutive lines) whose text equals a TOC title on that page (ignoring numbering
    like "2.1", case and punctuation); titles not found
    on their page are reported by `unmatched` so the page can still open with them.
    Size mode: lines whose font size is well above the body size; larger sizes get lower levels.
    """

    toc: dict[int, list[tuple[int, str]]] = field(default_factory=dict)  # page (1-based) → [(level, title)]
    size_levels: dict[float, int] = field(default_factory=dict)
    _keys: dict[str, str] = field(default_factory=dict, init=False, repr=False)

    @classmethod
    def from_toc(cls, toc: list) -> Headings | None:
        by_page: dict[int, list[tuple[int, str]]] = {}
        for level, title, page, *_ in toc:
            if page >= 1 and title.strip():
                by_page.setdefault(page, []).append((min(level, _MAX_LEVEL), _WS.sub(" ", title).strip()))
        return cls(toc=by_page) if by_page else None

    @classmethod
    def from_sizes(cls, size_chars: Counter) -> Headings:
        """`size_chars`: characters per font size (rounded) over the whole document."""
        if not size_chars:
            return cls()
        body = size_chars.most_common(1)[0][0]
        total = sum(size_chars.values())
        # NOTE: a size used by a third of the text or more is body text of another kind, not headings
        bigger = sorted((s for s, n in size_chars.items() if s >= body * 1.15 and s - body >= 1 and n < total / 3),
                        reverse=True)
        return cls(size_levels={s: min(i + 1, _MAX_LEVEL) for i, s in enumerate(bigger)})

    def page_titles(self, page: int) -> list[tuple[int, str]]:
        return self.toc.get(page, [])

    def level(self, page: int, text: str, size: float, pending: list[tuple[int, str]]) -> int | None:
        """Heading level of a line, or None. In TOC mode a matched title is removed from `pending`."""
        if self.toc:
            return self._match(text, pending) if pending and len(text) <= _MAX_HEADING_CHARS else None
        if len(text) > _MAX_HEADING_CHARS:
            return None
        return self.size_levels.get(size)

    def starts_title(self, text: str, nxt: str, pending: list[tuple[int, str]]) -> int | None:
        """TOC mode: a title broken over two lines (`text` + `nxt`); returns its level and removes it."""
        if not pending or len(text) + len(nxt) > _MAX_HEADING_CHARS:
            return None
        return self._match(f"{text} {nxt}", pending)

    def _match(self, text: str, pending: list[tuple[int, str]]) -> int | None:
        key = title_key(text)
        for i, (lvl, title) in enumerate(pending):
            if self._keys.get(title) == key:
                del pending[i]
                return lvl
        return None

    def __post_init__(self):
        # NOTE: keys of the TOC titles once, not per line of the document
        self._keys = {title: title_key(title) for entries in self.toc.values() for _, title in entries}
