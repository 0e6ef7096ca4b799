"""The migrations build exactly the models' schema, from empty, on SQLite and PostgreSQL."""

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from pipeline.records.db import make_engine
from pipeline.records.models import Base

TABLES = {"tenants", "api_keys", "documents", "jobs", "results", "idempotency_keys", "alembic_version",
          "corpora", "corpus_documents", "batches", "batch_items"}


def test_upgrade_from_empty_creates_every_table(db_url):
    engine = make_engine(db_url)
    try:
        assert set(inspect(engine).get_table_names()) == TABLES
        cols = {c["name"] for c in inspect(engine).get_columns("jobs")}
        assert {"lease_owner", "lease_expires_at", "attempts", "max_attempts", "prefill_tokens_done",
                "prefill_tokens_total", "request_id"} <= cols
    finally:
        engine.dispose()


def test_models_equal_migrations(db_url):
    """Autogenerate against a migrated database finds nothing to do: a model change needs a migration."""
    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={"compare_type": True})
            assert compare_metadata(ctx, Base.metadata) == []
    finally:
        engine.dispose()


def test_diff_check_sees_a_missing_migration(sqlite_url):
    """The check above must be able to fail: a column only the models have shows up in the diff."""
    from sqlalchemy import Column, Integer, MetaData

    meta = MetaData()
    for table in Base.metadata.tables.values():
        table.to_metadata(meta)
    meta.tables["jobs"].append_column(Column("not_migrated", Integer))
    engine = make_engine(sqlite_url)
    try:
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), meta)
    finally:
        engine.dispose()
    assert [d[0] for d in diff] == ["add_column"] and diff[0][3].name == "not_migrated"


def test_migrate_command_creates_the_schema(tmp_path):
    """`python -m pipeline.records.migrate` (the compose `migrate` service) on an empty database."""
    import os
    import subprocess
    import sys

    url = f"sqlite:///{tmp_path / 'm.sqlite'}"
    r = subprocess.run([sys.executable, "-m", "pipeline.records.migrate"], capture_output=True, text=True,
                       env={**os.environ, "WHOLEDOC_DATABASE_URL": url}, timeout=60)
    assert r.returncode == 0, r.stderr
    engine = make_engine(url)
    try:
        assert set(inspect(engine).get_table_names()) == TABLES
    finally:
        engine.dispose()


def test_one_head_and_the_latest_migration_goes_down_and_up(tmp_path):
    """Alembic stays at a single head, and the newest revision's downgrade undoes exactly its upgrade."""
    from alembic import command
    from alembic.script import ScriptDirectory

    from pipeline.records.db import alembic_config, upgrade

    url = f"sqlite:///{tmp_path / 'down.sqlite'}"
    cfg = alembic_config(url)
    assert len(ScriptDirectory.from_config(cfg).get_heads()) == 1
    upgrade(url)
    command.downgrade(cfg, "-1")
    upgrade(url)
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            assert compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata) == []
    finally:
        engine.dispose()
