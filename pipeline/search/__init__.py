"""Full-text search over a tenant's documents, to pick the whole documents a corpus question is asked of
(docs/corpus-questions.md). `search_index(session)` gives the backend of the session's database."""

from sqlalchemy.orm import Session

from pipeline.search.index import Scope, SearchIndex, SearchResult, documents_in_scope
from pipeline.search.postgres import PostgresIndex
from pipeline.search.scoring import DocumentHit
from pipeline.search.sqlite import SqliteIndex

BACKENDS: dict[str, type[SearchIndex]] = {"postgresql": PostgresIndex, "sqlite": SqliteIndex}


def search_index(session: Session) -> SearchIndex:
    """The index backend for the database `session` is bound to (PostgreSQL or SQLite)."""
    name = session.get_bind().dialect.name
    try:
        return BACKENDS[name]()
    except KeyError:
        raise NotImplementedError(f"no full-text index backend for {name!r} (PostgreSQL or SQLite)") from None


__all__ = ["BACKENDS", "DocumentHit", "PostgresIndex", "Scope", "SearchIndex", "SearchResult", "SqliteIndex",
           "documents_in_scope", "search_index"]
