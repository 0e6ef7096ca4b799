"""Scores: BM25 per index row, aggregated per document (docs/corpus-questions.md#scores).

A document's score is, for each query term, its best row's BM25 contribution among its pages or files, summed over
the terms; plus SUMMARY_WEIGHT times the same over its summaries. Taking the best row per term (not the sum over
rows) keeps a long document from outscoring a short one just by having more pages, while a document that covers
several terms on different pages still gets credit for each: the whole document goes into the prompt. The same
Python code scores for both backends, so PostgreSQL and SQLite rank alike.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

K1 = 1.2
B = 0.75
SUMMARY_WEIGHT = 0.5  # a summary names what a document is about: a term there adds half its page score again


@dataclass(frozen=True)
class RowMatch:
    """One index row that holds at least one query term: `tf[i]` counts query term i in it."""

    document_id: str
    source: str  # text | summary
    anchor: str | None
    num_terms: int
    tf: tuple[int, ...]


@dataclass(frozen=True)
class Stats:
    """The scope's row count and mean row length (in terms), and each query term's row count (document frequency)."""

    rows: int
    mean_terms: float
    df: tuple[int, ...]


@dataclass(frozen=True)
class DocumentHit:
    """One document's score, with why: the terms it matched (by contribution, best first) and its best anchors."""

    document_id: str
    score: float
    matched_terms: tuple[str, ...]
    anchors: tuple[str, ...] = ()  # its best-scoring pages or files, best first (at most 3)


def idf(df: int, rows: int) -> float:
    """BM25's inverse document frequency (the +1 form: never negative, so a common term only adds little)."""
    return math.log(1 + (rows - df + 0.5) / (df + 0.5))


def row_contribution(tf: int, num_terms: int, mean_terms: float, term_idf: float) -> float:
    if tf <= 0:
        return 0.0
    norm = 1 - B + B * (num_terms / mean_terms if mean_terms > 0 else 1.0)
    return term_idf * tf * (K1 + 1) / (tf + K1 * norm)


def score_documents(terms: Sequence[str], stats: Stats, matches: Iterable[RowMatch]) -> list[DocumentHit]:
    """Documents with at least one matched term, best first (ties by document id, so the order is stable)."""
    idfs = [idf(df, max(stats.rows, df)) for df in stats.df]
    best: dict[tuple[str, str], list[float]] = {}  # (document, source) → best contribution per term
    anchors: dict[str, dict[str, float]] = {}
    for m in matches:
        per_term = [row_contribution(tf, m.num_terms, stats.mean_terms, w) for tf, w in zip(m.tf, idfs, strict=True)]
        slot = best.setdefault((m.document_id, m.source), [0.0] * len(terms))
        for i, c in enumerate(per_term):
            slot[i] = max(slot[i], c)
        if m.source == "text" and m.anchor is not None:
            seen = anchors.setdefault(m.document_id, {})
            seen[m.anchor] = max(seen.get(m.anchor, 0.0), sum(per_term))
    totals: dict[str, list[float]] = {}
    for (doc, source), contrib in best.items():
        weight = SUMMARY_WEIGHT if source == "summary" else 1.0
        acc = totals.setdefault(doc, [0.0] * len(terms))
        for i, c in enumerate(contrib):
            acc[i] += weight * c
    hits = []
    for doc, contrib in totals.items():
        order = sorted((i for i, c in enumerate(contrib) if c > 0), key=lambda i: (-contrib[i], i))
        top = sorted(anchors.get(doc, {}).items(), key=lambda kv: (-kv[1], kv[0]))[:3]
        hits.append(DocumentHit(doc, sum(contrib), tuple(terms[i] for i in order), tuple(a for a, _ in top)))
    return sorted(hits, key=lambda h: (-h.score, h.document_id))
