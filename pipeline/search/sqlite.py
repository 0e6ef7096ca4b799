"""The SQLite backend (embedded mode): an FTS5 table `search_fts` over `search_rows.terms` (external content, kept
in step by triggers; migration 0007), tokenized by `unicode61` with diacritics kept, like the `simple` configuration
on PostgreSQL (docs/corpus-questions.md)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import ColumnElement, bindparam, select, text
from sqlalchemy.sql import column, table

from pipeline.records.models import SearchRow
from pipeline.search.index import SearchIndex

FTS_TABLE = "search_fts"
_fts = table(FTS_TABLE, column("rowid"), column(FTS_TABLE))


def fts_query(words: Sequence[str]) -> str:
    """`"a" OR "b"`: each term quoted, so none is read as an FTS5 operator or column filter."""
    return " OR ".join(f'"{w}"' for w in words)


class SqliteIndex(SearchIndex):
    dialect = "sqlite"

    def _match(self, words: Sequence[str]) -> ColumnElement[bool]:
        match = text(f"{FTS_TABLE} MATCH :q").bindparams(bindparam("q", fts_query(words), unique=True))
        return SearchRow.id.in_(select(_fts.c.rowid).where(match))
