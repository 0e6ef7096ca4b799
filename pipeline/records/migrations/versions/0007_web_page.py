"""documents.page_status (pages that failed or were scanned); page_images (rendered citation pages, cached)

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07 14:20:00

The web page (docs/web.md) shows which pages of a PDF extraction could not read, and opens a cited page as an image
with the quote highlighted; each image is rendered once and its blob named here.
"""

import sqlalchemy as sa
from alembic import op

import pipeline.records.types

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("documents") as batch:
        batch.add_column(sa.Column("page_status", sa.JSON(), nullable=True))
    op.create_table(
        "page_images",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("tenant_id", sa.String(length=32), nullable=False),
        sa.Column("document_id", sa.String(length=32), nullable=False),
        sa.Column("cache_key", sa.String(length=64), nullable=False),
        sa.Column("blob_key", sa.String(length=500), nullable=False),
        sa.Column("created_at", pipeline.records.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["document_id"], ["documents.id"], name=op.f("fk_page_images_document_id_documents"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], name=op.f("fk_page_images_tenant_id_tenants"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_page_images")),
        sa.UniqueConstraint("document_id", "cache_key", name="uq_page_images_document_key"),
    )
    op.create_index(op.f("ix_page_images_tenant_id"), "page_images", ["tenant_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_page_images_tenant_id"), table_name="page_images")
    op.drop_table("page_images")
    with op.batch_alter_table("documents") as batch:
        batch.drop_column("page_status")
