"""The migrations build exactly the models' schema, from empty, on SQLite and PostgreSQL."""

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from pipeline.records.db import make_engine
from pipeline.records.models import Base

TABLES = {"tenants", "api_keys", "documents", "jobs", "results", "idempotency_keys", "alembic_version",
          "job_parts", "corpora", "corpus_documents", "batches", "batch_items",
          "webhooks", "webhook_deliveries", "webhook_attempts", "digest_schedules", "digest_runs",
          "page_images"}
# The search index (migration 0008, pipeline.search): its rows table is a model; beside it each database gets what it
# searches with, which no model describes: SQLite an FTS5 table (plus the shadow tables FTS5 keeps), PostgreSQL a
# generated tsvector column with a GIN index. Those are named one by one, left out of the models comparison by
# `outside_models` and checked to exist by test_search_index_objects_exist; anything else still shows up in a diff.
SEARCH_TABLES = {"search_rows"}
FTS_TABLES = {"search_fts", "search_fts_data", "search_fts_idx", "search_fts_docsize", "search_fts_config"}
TSV_COLUMN, TSV_INDEX = ("search_rows", "tsv"), "ix_search_rows_tsv"


def tables(url: str) -> set[str]:
    """Every table a migrated database has: the models' tables, and SQLite's FTS5 ones there."""
    return TABLES | SEARCH_TABLES | (FTS_TABLES if url.startswith("sqlite") else set())


def outside_models(obj, name, type_, reflected, compare_to) -> bool:
    """Alembic's include_object: False for the search objects named above (only), which no model describes."""
    if type_ == "table":
        return name not in FTS_TABLES
    if type_ == "column":
        return (obj.table.name, name) != TSV_COLUMN
    if type_ == "index":
        return name != TSV_INDEX
    return True


def test_upgrade_from_empty_creates_every_table(db_url):
    engine = make_engine(db_url)
    try:
        assert set(inspect(engine).get_table_names()) == tables(db_url)
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
            ctx = MigrationContext.configure(conn, opts={"compare_type": True, "include_object": outside_models})
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
            diff = compare_metadata(MigrationContext.configure(conn, opts={"include_object": outside_models}), meta)
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
        assert set(inspect(engine).get_table_names()) == tables(url)
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
            ctx = MigrationContext.configure(conn, opts={"compare_type": True, "include_object": outside_models})
            assert compare_metadata(ctx, Base.metadata) == []
    finally:
        engine.dispose()


def test_search_index_objects_exist(db_url):
    """What `outside_models` leaves out of the comparison is there: FTS5 and its triggers on SQLite, the generated
    tsvector column and its GIN index on PostgreSQL."""
    from sqlalchemy import text

    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            if engine.dialect.name == "sqlite":
                sql = conn.scalar(text("SELECT sql FROM sqlite_master WHERE name = 'search_fts'"))
                assert "fts5" in sql and "content='search_rows'" in sql
                triggers = conn.scalars(text("SELECT name FROM sqlite_master WHERE type = 'trigger' "
                                             "AND tbl_name = 'search_rows'")).all()
                assert sorted(triggers) == ["search_rows_ad", "search_rows_ai", "search_rows_au"]
            else:
                kind, generated = conn.execute(text(
                    "SELECT data_type, generation_expression FROM information_schema.columns "
                    "WHERE table_name = 'search_rows' AND column_name = 'tsv'")).one()
                assert kind == "tsvector" and "to_tsvector('simple'" in generated
                index = conn.scalar(text("SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_search_rows_tsv'"))
                assert "USING gin (tsv)" in index
    finally:
        engine.dispose()
