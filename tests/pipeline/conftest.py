"""Fixtures of the pipeline tests: the records database, migrated, on SQLite and on PostgreSQL (the session's
pg_url from tests/conftest.py). moto's S3 server for the blob store tests is tests/conftest.py's moto_endpoint."""

import pytest

from pipeline.records.db import make_engine, session_factory, upgrade


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory):
    url = f"sqlite:///{tmp_path_factory.mktemp('records') / 'wholedoc.sqlite'}"
    upgrade(url)
    return url


@pytest.fixture(params=["sqlite", pytest.param("pg", marks=pytest.mark.services)])
def db_url(request):
    """Each records test runs on both databases; the PostgreSQL run is marked `services`."""
    return request.getfixturevalue(f"{request.param}_url")


@pytest.fixture
def db(db_url):
    """A sessionmaker on the migrated database (SQLite and PostgreSQL)."""
    engine = make_engine(db_url)
    yield session_factory(engine)
    engine.dispose()
