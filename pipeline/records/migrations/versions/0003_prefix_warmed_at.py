"""documents.prefix_warmed_at: when a warm-up request last put the document's prefix into the endpoint's own cache

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-07 12:25:00

Endpoints whose prefix cache fills only once a request completes (DeepSeek's API) get one warm-up request per
document before its questions; the column says when, so concurrent questions wait for one warm-up instead of each
paying the whole prefix.
"""

import sqlalchemy as sa
from alembic import op

import pipeline.records.types

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("documents") as batch:
        batch.add_column(sa.Column("prefix_warmed_at", pipeline.records.types.UTCDateTime(timezone=True),
                                   nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("documents") as batch:
        batch.drop_column("prefix_warmed_at")
