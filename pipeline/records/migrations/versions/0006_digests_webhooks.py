"""digest schedules and runs; webhooks, their deliveries and every attempt

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07 14:00:00

- digest_schedules: a corpus's cron schedule (IANA time zone, style, paused) and its next fire time.
- digest_runs: one per (schedule, period start), the documents it covers, its stage, job and result.
- webhooks: a tenant's endpoint, the events it wants, its signing secret.
- webhook_deliveries: one event for one webhook (webhook-id, payload, retry state polled on next_attempt_at).
- webhook_attempts: every try at a delivery.
"""

import sqlalchemy as sa
from alembic import op

import pipeline.records.types

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

UTC = pipeline.records.types.UTCDateTime


def _fk(table: str, column: str, target: str, ondelete: str = "CASCADE") -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint([column], [f"{target}.id"], name=op.f(f"fk_{table}_{column}_{target}"),
                                   ondelete=ondelete)


def upgrade() -> None:
    op.create_table(
        "webhooks",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("tenant_id", sa.String(length=32), nullable=False),
        sa.Column("url", sa.String(length=2000), nullable=False),
        sa.Column("events", sa.JSON(), nullable=False),
        sa.Column("secret", sa.String(length=100), nullable=False),
        sa.Column("created_at", UTC(timezone=True), nullable=False),
        _fk("webhooks", "tenant_id", "tenants"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhooks")),
    )
    with op.batch_alter_table("webhooks") as batch_op:
        batch_op.create_index("ix_webhooks_tenant_page", ["tenant_id", "created_at", "id"], unique=False)

    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("tenant_id", sa.String(length=32), nullable=False),
        sa.Column("webhook_id", sa.String(length=32), nullable=False),
        sa.Column("event", sa.String(length=40), nullable=False),
        sa.Column("event_key", sa.String(length=200), nullable=False),
        sa.Column("message_id", sa.String(length=64), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", UTC(timezone=True), nullable=True),
        sa.Column("last_status", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", UTC(timezone=True), nullable=False),
        sa.Column("finished_at", UTC(timezone=True), nullable=True),
        _fk("webhook_deliveries", "tenant_id", "tenants"),
        _fk("webhook_deliveries", "webhook_id", "webhooks"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_deliveries")),
        sa.UniqueConstraint("webhook_id", "event_key", name="uq_webhook_deliveries_webhook_event"),
    )
    with op.batch_alter_table("webhook_deliveries") as batch_op:
        batch_op.create_index("ix_webhook_deliveries_due", ["state", "next_attempt_at"], unique=False)
        batch_op.create_index("ix_webhook_deliveries_webhook_page", ["webhook_id", "created_at", "id"], unique=False)

    op.create_table(
        "webhook_attempts",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("delivery_id", sa.String(length=32), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("started_at", UTC(timezone=True), nullable=False),
        sa.Column("finished_at", UTC(timezone=True), nullable=True),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        _fk("webhook_attempts", "delivery_id", "webhook_deliveries"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_attempts")),
        sa.UniqueConstraint("delivery_id", "number", name="uq_webhook_attempts_delivery_number"),
    )

    op.create_table(
        "digest_schedules",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("tenant_id", sa.String(length=32), nullable=False),
        sa.Column("corpus_id", sa.String(length=32), nullable=False),
        sa.Column("cron", sa.String(length=120), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("style", sa.String(length=20), nullable=False),
        sa.Column("paused", sa.Boolean(), nullable=False),
        sa.Column("next_run_at", UTC(timezone=True), nullable=False),
        sa.Column("created_at", UTC(timezone=True), nullable=False),
        sa.Column("updated_at", UTC(timezone=True), nullable=False),
        _fk("digest_schedules", "tenant_id", "tenants"),
        _fk("digest_schedules", "corpus_id", "corpora"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_digest_schedules")),
    )
    with op.batch_alter_table("digest_schedules") as batch_op:
        batch_op.create_index("ix_digest_schedules_tenant_page", ["tenant_id", "created_at", "id"], unique=False)
        batch_op.create_index("ix_digest_schedules_due", ["paused", "next_run_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_digest_schedules_corpus_id"), ["corpus_id"], unique=False)

    op.create_table(
        "digest_runs",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("tenant_id", sa.String(length=32), nullable=False),
        sa.Column("schedule_id", sa.String(length=32), nullable=False),
        sa.Column("trigger", sa.String(length=20), nullable=False),
        sa.Column("period_start", UTC(timezone=True), nullable=False),
        sa.Column("period_end", UTC(timezone=True), nullable=False),
        sa.Column("added_after", UTC(timezone=True), nullable=True),
        sa.Column("added_until", UTC(timezone=True), nullable=False),
        sa.Column("document_ids", sa.JSON(), nullable=False),
        sa.Column("summary_jobs", sa.JSON(), nullable=False),
        sa.Column("documents", sa.JSON(), nullable=False),
        sa.Column("skipped", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("stage", sa.String(length=20), nullable=True),
        sa.Column("mode", sa.String(length=20), nullable=True),
        sa.Column("job_id", sa.String(length=32), nullable=True),
        sa.Column("result_id", sa.String(length=32), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", UTC(timezone=True), nullable=False),
        sa.Column("finished_at", UTC(timezone=True), nullable=True),
        _fk("digest_runs", "tenant_id", "tenants"),
        _fk("digest_runs", "schedule_id", "digest_schedules"),
        _fk("digest_runs", "job_id", "jobs", "SET NULL"),
        _fk("digest_runs", "result_id", "results", "SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_digest_runs")),
        sa.UniqueConstraint("schedule_id", "period_start", name="uq_digest_runs_schedule_period"),
    )
    with op.batch_alter_table("digest_runs") as batch_op:
        batch_op.create_index("ix_digest_runs_schedule_page", ["schedule_id", "created_at", "id"], unique=False)
        batch_op.create_index("ix_digest_runs_state", ["state"], unique=False)


def downgrade() -> None:
    op.drop_table("digest_runs")
    op.drop_table("digest_schedules")
    op.drop_table("webhook_attempts")
    op.drop_table("webhook_deliveries")
    op.drop_table("webhooks")
