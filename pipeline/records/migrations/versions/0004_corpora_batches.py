"""corpora and their documents; bulk Q&A batches and their items

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-07 13:40:00

- corpora: a named, tenant-owned set of documents (name unique per tenant).
- corpus_documents: membership (a document may be in several corpora), with when it was added.
- batches: bulk Q&A over documents (questions, thinking, max_tokens, state, pause reason and back-off).
- batch_items: one row per (document, question) with its answer job, answer, citations, usage and error.
"""

import sqlalchemy as sa
from alembic import op

import pipeline.records.types

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "corpora",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("tenant_id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("created_at", pipeline.records.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", pipeline.records.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], name=op.f("fk_corpora_tenant_id_tenants"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_corpora")),
        sa.UniqueConstraint("tenant_id", "name", name="uq_corpora_tenant_name"),
    )
    with op.batch_alter_table("corpora") as batch_op:
        batch_op.create_index("ix_corpora_tenant_page", ["tenant_id", "created_at", "id"], unique=False)

    op.create_table(
        "corpus_documents",
        sa.Column("corpus_id", sa.String(length=32), nullable=False),
        sa.Column("document_id", sa.String(length=32), nullable=False),
        sa.Column("added_at", pipeline.records.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["corpus_id"], ["corpora.id"], name=op.f("fk_corpus_documents_corpus_id_corpora"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["document_id"], ["documents.id"],
                                name=op.f("fk_corpus_documents_document_id_documents"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("corpus_id", "document_id", name=op.f("pk_corpus_documents")),
    )
    with op.batch_alter_table("corpus_documents") as batch_op:
        batch_op.create_index("ix_corpus_documents_corpus_added", ["corpus_id", "added_at", "document_id"],
                              unique=False)
        batch_op.create_index(batch_op.f("ix_corpus_documents_document_id"), ["document_id"], unique=False)

    op.create_table(
        "batches",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("tenant_id", sa.String(length=32), nullable=False),
        sa.Column("corpus_id", sa.String(length=32), nullable=True),
        sa.Column("questions", sa.JSON(), nullable=False),
        sa.Column("thinking", sa.Boolean(), nullable=False),
        sa.Column("max_tokens", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("paused_reason", sa.Text(), nullable=True),
        sa.Column("resume_at", pipeline.records.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("backoffs", sa.Integer(), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("created_at", pipeline.records.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", pipeline.records.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("finished_at", pipeline.records.types.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["corpus_id"], ["corpora.id"], name=op.f("fk_batches_corpus_id_corpora"),
                                ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], name=op.f("fk_batches_tenant_id_tenants"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_batches")),
    )
    with op.batch_alter_table("batches") as batch_op:
        batch_op.create_index(batch_op.f("ix_batches_corpus_id"), ["corpus_id"], unique=False)
        batch_op.create_index("ix_batches_state", ["state"], unique=False)
        batch_op.create_index("ix_batches_tenant_page", ["tenant_id", "created_at", "id"], unique=False)

    op.create_table(
        "batch_items",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("tenant_id", sa.String(length=32), nullable=False),
        sa.Column("batch_id", sa.String(length=32), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("document_id", sa.String(length=32), nullable=True),
        sa.Column("document_name", sa.String(length=500), nullable=True),
        sa.Column("question_index", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("job_id", sa.String(length=32), nullable=True),
        sa.Column("answer", sa.Text(), nullable=True),
        sa.Column("citations", sa.JSON(), nullable=True),
        sa.Column("usage", sa.JSON(), nullable=True),
        sa.Column("prompt_tokens", sa.Integer(), nullable=True),
        sa.Column("cached_tokens", sa.Integer(), nullable=True),
        sa.Column("completion_tokens", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", pipeline.records.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", pipeline.records.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("finished_at", pipeline.records.types.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["batch_id"], ["batches.id"], name=op.f("fk_batch_items_batch_id_batches"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["document_id"], ["documents.id"], name=op.f("fk_batch_items_document_id_documents"),
                                ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], name=op.f("fk_batch_items_job_id_jobs"), ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], name=op.f("fk_batch_items_tenant_id_tenants"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_batch_items")),
        sa.UniqueConstraint("batch_id", "position", name="uq_batch_items_batch_position"),
        sa.UniqueConstraint("job_id", name=op.f("uq_batch_items_job_id")),
    )
    with op.batch_alter_table("batch_items") as batch_op:
        batch_op.create_index("ix_batch_items_batch_state", ["batch_id", "state", "position"], unique=False)
        batch_op.create_index(batch_op.f("ix_batch_items_document_id"), ["document_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_batch_items_tenant_id"), ["tenant_id"], unique=False)


def downgrade() -> None:
    op.drop_table("batch_items")
    op.drop_table("batches")
    op.drop_table("corpus_documents")
    op.drop_table("corpora")
