"""search_rows: the full-text index of documents' pages, files and summaries (docs/corpus-questions.md)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07 14:30:00

- search_rows: one row per page or file of a ready document (long ones split) and per summary; `terms` holds the
  text as search terms.
- PostgreSQL: `tsv`, a generated tsvector (`simple` configuration) of `terms`, with a GIN index.
- SQLite: `search_fts`, an FTS5 table over `terms` (external content), kept in step by three triggers.
  Neither is in the SQLAlchemy models (tests/pipeline/test_records_schema.py names them as the only exceptions).
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

SQLITE_FTS = [
    "CREATE VIRTUAL TABLE search_fts USING fts5(terms, content='search_rows', content_rowid='id', "
    "tokenize='unicode61 remove_diacritics 0')",
    "CREATE TRIGGER search_rows_ai AFTER INSERT ON search_rows BEGIN "
    "INSERT INTO search_fts(rowid, terms) VALUES (new.id, new.terms); END",
    "CREATE TRIGGER search_rows_ad AFTER DELETE ON search_rows BEGIN "
    "INSERT INTO search_fts(search_fts, rowid, terms) VALUES ('delete', old.id, old.terms); END",
    "CREATE TRIGGER search_rows_au AFTER UPDATE ON search_rows BEGIN "
    "INSERT INTO search_fts(search_fts, rowid, terms) VALUES ('delete', old.id, old.terms); "
    "INSERT INTO search_fts(rowid, terms) VALUES (new.id, new.terms); END",
]
POSTGRES_TSV = [
    "ALTER TABLE search_rows ADD COLUMN tsv tsvector GENERATED ALWAYS AS (to_tsvector('simple', terms)) STORED",
    "CREATE INDEX ix_search_rows_tsv ON search_rows USING gin (tsv)",
]


def upgrade() -> None:
    op.create_table(
        "search_rows",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("tenant_id", sa.String(length=32), nullable=False),
        sa.Column("document_id", sa.String(length=32), nullable=False),
        sa.Column("source", sa.String(length=20), nullable=False),
        sa.Column("anchor", sa.String(length=500), nullable=True),
        sa.Column("result_id", sa.String(length=32), nullable=True),
        sa.Column("num_terms", sa.Integer(), nullable=False),
        sa.Column("terms", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["document_id"], ["documents.id"], name=op.f("fk_search_rows_document_id_documents"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["result_id"], ["results.id"], name=op.f("fk_search_rows_result_id_results"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], name=op.f("fk_search_rows_tenant_id_tenants"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_search_rows")),
    )
    with op.batch_alter_table("search_rows") as batch_op:
        batch_op.create_index("ix_search_rows_tenant_document", ["tenant_id", "document_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_search_rows_result_id"), ["result_id"], unique=False)
    dialect = op.get_bind().dialect.name
    for statement in SQLITE_FTS if dialect == "sqlite" else POSTGRES_TSV if dialect == "postgresql" else []:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for name in ("search_rows_au", "search_rows_ad", "search_rows_ai"):
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
        op.execute("DROP TABLE IF EXISTS search_fts")
    with op.batch_alter_table("search_rows") as batch_op:
        batch_op.drop_index(batch_op.f("ix_search_rows_result_id"))
        batch_op.drop_index("ix_search_rows_tenant_document")
    op.drop_table("search_rows")
