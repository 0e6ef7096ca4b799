"""Fixtures for the records tests (imported by the test modules): a migrated SQLite file and PostgreSQL database."""

import pytest

from pipeline.records.db import make_engine, session_factory, upgrade
from pipeline.records.scratch import postgres_reachable, scratch_postgres
from tests.conftest import need_service


@pytest.fixture(scope="session")
def pg_url():
    """A fresh PostgreSQL database for this test session (127.0.0.1:5432, user postgres), dropped after."""
    if not postgres_reachable():
        need_service("postgresql", "127.0.0.1:5432 (user postgres) holds the records in production and CI")
    with scratch_postgres() as url:
        yield url


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory):
    url = f"sqlite:///{tmp_path_factory.mktemp('records') / 'wholedoc.sqlite'}"
    upgrade(url)
    return url


@pytest.fixture(params=["sqlite", "pg"])
def db_url(request):
    return request.getfixturevalue(f"{request.param}_url")


@pytest.fixture
def db(db_url):
    """A sessionmaker on the migrated database (SQLite and PostgreSQL)."""
    engine = make_engine(db_url)
    yield session_factory(engine)
    engine.dispose()
