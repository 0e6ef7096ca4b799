"""The PostgreSQL backend: rows hold a generated `tsv` tsvector (`to_tsvector('simple', terms)`, migration 0007)
with a GIN index; a row matches when `tsv @@` an OR of the terms. The `simple` configuration keeps every word as
written (no stemming, no stop words), right for code and for text in any language (docs/corpus-questions.md)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import ColumnElement, func, literal, literal_column

from pipeline.search.index import SearchIndex

CONFIG = "simple"


def tsquery(words: Sequence[str]) -> str:
    """`a | b | c`: terms are letters and digits only (pipeline.search.terms), so none is an operator."""
    return " | ".join(words)


class PostgresIndex(SearchIndex):
    dialect = "postgresql"

    def _match(self, words: Sequence[str]) -> ColumnElement[bool]:
        query = func.to_tsquery(literal_column(f"'{CONFIG}'::regconfig"), literal(tsquery(words)))
        return literal_column("search_rows.tsv").op("@@")(query)
