"""Service fixtures for worker tests: their own PostgreSQL database and Redis database, a blob folder, an
OpenAI-compatible fault server. (scratch_pg and redis_url are tests/conftest.py's.)"""

import pytest

from pipeline.records.db import make_engine, session_factory
from pipeline.storage import blob_store_from_url
from tests.helpers.services import redis_db
from tests.pipeline.faultserver import FaultServer


@pytest.fixture(scope="session")
def pg_url(scratch_pg):
    """The worker tests' own database (not the session's shared one): their reconciler sweeps every row, and
    another package's queued jobs must not be re-sent to these workers."""
    return scratch_pg()


@pytest.fixture
def llm():
    server = FaultServer()
    yield server
    server.close()


@pytest.fixture
def wk_env(pg_url, redis_url, llm, tmp_path):
    """The environment a worker process gets; leases are short so a lost worker is noticed within seconds."""
    import redis

    broker = redis_db(redis_url, 3)  # the worker tests' own Redis database
    redis.Redis.from_url(broker).flushdb()  # each test starts with empty queues
    return {"WHOLEDOC_DATABASE_URL": pg_url, "WHOLEDOC_BLOB_URL": f"file://{tmp_path / 'blobs'}",
            "WHOLEDOC_BROKER_URL": broker, "WHOLEDOC_INFERENCE_URL": llm.base_url, "WHOLEDOC_MODEL": llm.model,
            "WHOLEDOC_LEASE_SECONDS": "2", "WHOLEDOC_RECONCILE_SECONDS": "1", "WHOLEDOC_HOME": str(tmp_path)}


@pytest.fixture
def records(pg_url):
    engine = make_engine(pg_url)
    yield session_factory(engine)
    engine.dispose()


@pytest.fixture
def blobs(wk_env):
    return blob_store_from_url(wk_env["WHOLEDOC_BLOB_URL"])
