"""The full-text index of a tenant's documents: one interface, a PostgreSQL and a SQLite backend
(docs/corpus-questions.md#the-index).

Rows (`search_rows`) are pages or files (split past ROW_TERMS terms) and summaries. A search finds the rows that
hold any query term with the database's own index (a GIN index on a tsvector, or FTS5), counts each term in them,
and scores documents in Python (pipeline.search.scoring), so both backends rank alike. Every query is scoped to one
tenant, and optionally to a corpus, document kinds and an upload-date range.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, Select, delete, func, insert, literal, select
from sqlalchemy.orm import Session

from pipeline.document import ExtractedDocument
from pipeline.records.models import CorpusDocument, Document, DocumentStatus, SearchRow
from pipeline.search.scoring import DocumentHit, RowMatch, Stats, score_documents
from pipeline.search.terms import chunks, query_terms, section_terms, stored, terms

MAX_CANDIDATE_ROWS = 20_000  # rows read per search; the most common terms beyond it are left out (and reported)
COMMON_SHARE = 0.5  # a term in more than this share of the scope's rows is left out (and reported), unless all are


@dataclass(frozen=True)
class Scope:
    """Which documents a search may return: always one tenant's; optionally one corpus, kinds, an upload range."""

    tenant_id: str
    corpus_id: str | None = None
    kinds: tuple[str, ...] = ()
    uploaded_after: datetime | None = None
    uploaded_before: datetime | None = None


@dataclass(frozen=True)
class SearchResult:
    """Documents that match, best first; the question's terms, and those left out as too common to rank by."""

    terms: tuple[str, ...]
    hits: tuple[DocumentHit, ...]
    ignored_terms: tuple[str, ...] = ()


def document_filter(scope: Scope) -> list[ColumnElement[bool]]:
    """Conditions on `documents` for the scope: the tenant's ready documents, in the corpus, of the kinds, dates."""
    conds = [Document.tenant_id == scope.tenant_id, Document.status == DocumentStatus.READY]
    if scope.corpus_id is not None:
        conds.append(Document.id.in_(select(CorpusDocument.document_id)
                                     .where(CorpusDocument.corpus_id == scope.corpus_id)))
    if scope.kinds:
        conds.append(Document.kind.in_(scope.kinds))
    if scope.uploaded_after is not None:
        conds.append(Document.created_at >= scope.uploaded_after)
    if scope.uploaded_before is not None:
        conds.append(Document.created_at < scope.uploaded_before)
    return conds


def documents_in_scope(session: Session, scope: Scope) -> list[Document]:
    """Every document of the scope, by id (the stable order packing uses)."""
    return list(session.scalars(select(Document).where(*document_filter(scope)).order_by(Document.id)))


class SearchIndex:
    """What both backends share; a backend says only how rows holding any of some terms are found (`_match`)."""

    dialect = ""

    def _match(self, words: Sequence[str]) -> ColumnElement[bool]:
        raise NotImplementedError

    # ---- writing ---------------------------------------------------------------------------------------------

    def index_document(self, session: Session, tenant_id: str, document_id: str, doc: ExtractedDocument) -> int:
        """Replace the document's page (or file) rows with `doc`'s; returns the rows written. Its summaries stay."""
        session.execute(delete(SearchRow).where(SearchRow.document_id == document_id, SearchRow.source == "text"))
        rows = [{"tenant_id": tenant_id, "document_id": document_id, "source": "text", "anchor": s.anchor[:500],
                 "num_terms": len(run), "terms": stored(run)}
                for s in doc.sections for run in chunks(section_terms(doc, s.text))]
        if rows:
            session.execute(insert(SearchRow), rows)
        return len(rows)

    def index_summary(self, session: Session, tenant_id: str, document_id: str, result_id: str, text: str) -> int:
        """Index one summary (a result) of the document; indexing the same result again replaces its rows."""
        session.execute(delete(SearchRow).where(SearchRow.result_id == result_id))
        rows = [{"tenant_id": tenant_id, "document_id": document_id, "source": "summary", "anchor": None,
                 "result_id": result_id, "num_terms": len(run), "terms": stored(run)}
                for run in chunks(terms(text))]
        if rows:
            session.execute(insert(SearchRow), rows)
        return len(rows)

    def remove_document(self, session: Session, document_id: str) -> int:
        """Delete every row of the document (deleting the document does this too, by cascade)."""
        return session.execute(delete(SearchRow).where(SearchRow.document_id == document_id)).rowcount

    # ---- reading ---------------------------------------------------------------------------------------------

    @staticmethod
    def _scoped(scope: Scope, *columns) -> Select:
        return (select(*columns).join(Document, Document.id == SearchRow.document_id)
                .where(SearchRow.tenant_id == scope.tenant_id, *document_filter(scope)))

    def search(self, session: Session, scope: Scope, question: str) -> SearchResult:
        """The scope's documents that hold any term of `question`, best first, each with its score and terms."""
        words = query_terms(question)
        if not words:
            return SearchResult((), ())
        rows, mean = session.execute(self._scoped(scope, func.count(SearchRow.id), func.avg(SearchRow.num_terms))).one()
        if not rows:
            return SearchResult(tuple(words), ())
        # a term in most rows says little about which document to pick: left out, unless every term is like that
        common = int(min(MAX_CANDIDATE_ROWS, COMMON_SHARE * rows))
        df = {w: self._rows_holding(session, scope, w, common + 1) for w in words}  # counting stops past `common`
        usable = [w for w in words if 0 < df[w] <= common]
        if not usable:  # every term is common: count them in full (to the row budget) and rank by them
            df = {w: self._rows_holding(session, scope, w, MAX_CANDIDATE_ROWS + 1) if df[w] else 0 for w in words}
            usable = [w for w in words if df[w]]
        chosen, budget = [], MAX_CANDIDATE_ROWS
        for w in sorted(usable, key=lambda w: (df[w], words.index(w))):
            if df[w] <= budget:  # the rarest first, while the rows they bring stay within the budget
                chosen.append(w)
                budget -= df[w]
        ignored = [w for w in words if df[w] and w not in chosen]
        if not chosen:
            return SearchResult(tuple(words), (), tuple(ignored))
        chosen.sort(key=words.index)  # the question's order, for reading
        counts = [self._count(w).label(f"tf{i}") for i, w in enumerate(chosen)]
        query = self._scoped(scope, SearchRow.document_id, SearchRow.source, SearchRow.anchor, SearchRow.num_terms,
                             *counts)
        matches = [RowMatch(r[0], r[1], r[2], r[3], tuple(int(x) for x in r[4:]))
                   for r in session.execute(query.where(self._match(chosen)))]
        stats = Stats(int(rows), float(mean or 1.0), tuple(df[w] for w in chosen))
        return SearchResult(tuple(words), tuple(score_documents(chosen, stats, matches)), tuple(ignored))

    def _rows_holding(self, session: Session, scope: Scope, word: str, cap: int) -> int:
        """How many of the scope's rows hold `word`, counted up to `cap` (past it the term is not read anyway)."""
        rows = self._scoped(scope, SearchRow.id).where(self._match([word])).limit(cap).subquery()
        return session.scalar(select(func.count()).select_from(rows)) or 0

    @staticmethod
    def _count(word: str) -> ColumnElement[int]:
        """Occurrences of `word` in a row's terms (each stored as ` word `), in plain SQL both databases run."""
        pat = f" {word} "
        return (func.length(SearchRow.terms) - func.length(func.replace(SearchRow.terms, literal(pat), ""))) \
            / len(pat)
