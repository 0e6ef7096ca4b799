"""job parts (a summary run in parts over the window) and results.coverage

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07 14:00:00

- job_parts: one row per part of a summary run in parts (docs/over-window.md): its span, progress and output, so a
  retried job resumes at the first part not done.
- results.coverage: what of the document a result was made from when not all of it went into one prompt.
"""

import sqlalchemy as sa
from alembic import op

import pipeline.records.types

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "job_parts",
        sa.Column("job_id", sa.String(length=32), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("span", sa.String(length=1100), nullable=False),
        sa.Column("first_anchor", sa.String(length=500), nullable=False),
        sa.Column("last_anchor", sa.String(length=500), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("prompt_tokens", sa.Integer(), nullable=False),
        sa.Column("prefill_tokens_done", sa.Integer(), nullable=True),
        sa.Column("prefill_tokens_total", sa.Integer(), nullable=True),
        sa.Column("tokens_generated", sa.Integer(), nullable=True),
        sa.Column("request_id", sa.String(length=100), nullable=True),
        sa.Column("text", sa.Text(), nullable=True),
        sa.Column("usage", sa.JSON(), nullable=True),
        sa.Column("updated_at", pipeline.records.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], name=op.f("fk_job_parts_job_id_jobs"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("job_id", "number", name=op.f("pk_job_parts")),
    )
    with op.batch_alter_table("results") as batch_op:
        batch_op.add_column(sa.Column("coverage", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("results") as batch_op:
        batch_op.drop_column("coverage")
    op.drop_table("job_parts")
