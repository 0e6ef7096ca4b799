"""Search terms: one tokenizer in Python for documents and questions alike, so PostgreSQL and SQLite see the same
words (docs/corpus-questions.md#the-index).

A term is a run of letters and digits (any script), lowercased, 1-64 characters (a single character only when it
is a digit run of one, e.g. "7"). A row's `terms` column stores them as ` a  b  c ` (each term between single
spaces), which both backends' own tokenizers split back into exactly these words, and which lets SQL count a
term's occurrences in a row with `replace` on either database.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from pipeline.document import ExtractedDocument, Kind

WORD = re.compile(r"[^\W_]+")
MAX_TERM_CHARS = 64  # longer runs (hashes, base64, CJK sentences) are not useful search terms
ROW_TERMS = 4000  # terms per index row: a long page or file is split (a PostgreSQL tsvector holds at most 1 MB)
MAX_QUERY_TERMS = 32
_PAGE_MARKER = re.compile(r"^\[page \d+\][ \t]*$", re.MULTILINE)  # the PDF extractor's anchor line
_LINE_NUMBER = re.compile(r"^\s*\d+ \| ", re.MULTILINE)  # `  12 | code` from the codebase packer


def terms(text: str) -> list[str]:
    """The search terms of `text`, in order, repeats kept."""
    return [w for w in WORD.findall(text.lower()) if _keep(w)]


def _keep(word: str) -> bool:
    return len(word) <= MAX_TERM_CHARS and (len(word) > 1 or word.isdigit())


def query_terms(question: str) -> list[str]:
    """The distinct terms of a question, first occurrence first, at most MAX_QUERY_TERMS."""
    return list(dict.fromkeys(terms(question)))[:MAX_QUERY_TERMS]


def stored(words: list[str]) -> str:
    """The `terms` column's form: every term between single spaces (` a  b `), so ` t ` counts occurrences."""
    return "".join(f" {w} " for w in words)


def chunks(words: list[str], size: int = ROW_TERMS) -> Iterator[list[str]]:
    """Consecutive runs of at most `size` terms (one empty run for no terms is not yielded)."""
    for i in range(0, len(words), size):
        yield words[i:i + size]


def section_terms(doc: ExtractedDocument, text: str) -> list[str]:
    """A page's or file's terms, without the extractor's page marker or the packer's line numbers."""
    clean = _PAGE_MARKER.sub("", text) if doc.kind == Kind.PDF else _LINE_NUMBER.sub("", text)
    return terms(clean)
