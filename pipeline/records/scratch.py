"""Throwaway PostgreSQL databases for tests and benchmarks: created fresh, migrated, dropped after."""

import secrets
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from pipeline.errors import StorageError
from pipeline.records.db import make_engine, upgrade

DEFAULT_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


def postgres_reachable(admin_url: str = DEFAULT_ADMIN_URL) -> bool:
    engine = make_engine(admin_url, connect_args={"connect_timeout": 3})
    try:
        with engine.connect():
            return True
    except OperationalError:
        return False
    finally:
        engine.dispose()


@contextmanager
def scratch_postgres(admin_url: str = DEFAULT_ADMIN_URL, *, migrate: bool = True) -> Iterator[str]:
    """Yield the URL of a new database `wholedoc_test_<random>` (migrated to head); drop it afterwards."""
    name = f"wholedoc_test_{secrets.token_hex(6)}"
    admin = make_engine(admin_url, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3})
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except OperationalError as exc:
        admin.dispose()
        raise StorageError(f"cannot create a scratch database at {admin_url}: {exc}") from exc
    url = admin_url.rsplit("/", 1)[0] + "/" + name
    try:
        if migrate:
            upgrade(url)
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
