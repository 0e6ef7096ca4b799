"""api conventions: idempotency keys; indexes for cursor pages and for finding an upload's bytes again

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-07 11:16:07.429473

- idempotency_keys: the stored response of a POST made with an Idempotency-Key, per tenant, until expires_at
  (the reconciler deletes expired rows).
- documents / jobs: (tenant_id, created_at, id) serves the newest-first cursor pages and replaces the tenant_id
  index; documents (tenant_id, sha256) finds the same bytes uploaded again.
"""

import sqlalchemy as sa
from alembic import op

import pipeline.records.types

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "idempotency_keys",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("tenant_id", sa.String(length=32), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("request", sa.String(length=600), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=False),
        sa.Column("body", sa.JSON(), nullable=False),
        sa.Column("location", sa.String(length=600), nullable=True),
        sa.Column("created_at", pipeline.records.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", pipeline.records.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_idempotency_keys_tenant_id_tenants"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_idempotency_keys")),
        sa.UniqueConstraint("tenant_id", "key", name="uq_idempotency_keys_tenant_key"),
    )
    with op.batch_alter_table("idempotency_keys", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_idempotency_keys_expires_at"), ["expires_at"], unique=False)

    with op.batch_alter_table("documents", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_documents_tenant_id"))
        batch_op.create_index("ix_documents_tenant_page", ["tenant_id", "created_at", "id"], unique=False)
        batch_op.create_index("ix_documents_tenant_sha256", ["tenant_id", "sha256"], unique=False)

    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_jobs_tenant_id"))
        batch_op.create_index("ix_jobs_tenant_page", ["tenant_id", "created_at", "id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index("ix_jobs_tenant_page")
        batch_op.create_index(batch_op.f("ix_jobs_tenant_id"), ["tenant_id"], unique=False)

    with op.batch_alter_table("documents", schema=None) as batch_op:
        batch_op.drop_index("ix_documents_tenant_sha256")
        batch_op.drop_index("ix_documents_tenant_page")
        batch_op.create_index(batch_op.f("ix_documents_tenant_id"), ["tenant_id"], unique=False)

    with op.batch_alter_table("idempotency_keys", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_idempotency_keys_expires_at"))

    op.drop_table("idempotency_keys")
