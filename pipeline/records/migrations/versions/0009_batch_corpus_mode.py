"""batches.mode and batch_items.set_key / coverage: batches of corpus questions (docs/batches.md#corpus-mode)

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07 15:00:00

- batches.mode: `documents` (one item per document and question, as before) or `corpus` (one item per question,
  answered over the corpus).
- batch_items.set_key: a corpus-mode item's selected documents (their ids in prompt order, comma-separated), set when
  dispatch first selects it; items are dispatched by it so questions over the same set run back to back.
- batch_items.coverage: a corpus-mode item's documents used and skipped, copied from its result.
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("batches") as batch:
        batch.add_column(sa.Column("mode", sa.String(20), nullable=False, server_default="documents"))
    with op.batch_alter_table("batch_items") as batch:
        batch.add_column(sa.Column("set_key", sa.Text(), nullable=True))
        batch.add_column(sa.Column("coverage", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("batch_items") as batch:
        batch.drop_column("coverage")
        batch.drop_column("set_key")
    with op.batch_alter_table("batches") as batch:
        batch.drop_column("mode")
