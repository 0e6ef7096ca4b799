"""Service fixtures for worker tests: PostgreSQL, a private Redis, a blob folder, an OpenAI-compatible fault server."""

import pytest

from pipeline.records.db import make_engine, session_factory
from pipeline.records.scratch import postgres_reachable, scratch_postgres
from pipeline.storage import blob_store_from_url
from tests.conftest import need_service
from tests.pipeline.faultserver import FaultServer
from tests.workers.services import redis_server


@pytest.fixture(scope="session")
def wk_pg_url():
    if not postgres_reachable():
        need_service("postgresql", "127.0.0.1:5432 (user postgres): the multi-process guarantees are tested on it")
    with scratch_postgres() as url:
        yield url


@pytest.fixture(scope="session")
def wk_redis(tmp_path_factory):
    with redis_server(tmp_path_factory.mktemp("redis")) as url:
        yield url


@pytest.fixture
def llm():
    server = FaultServer()
    yield server
    server.close()


@pytest.fixture
def wk_env(wk_pg_url, wk_redis, llm, tmp_path):
    """The environment a worker process gets; leases are short so a lost worker is noticed within seconds."""
    import redis

    redis.Redis.from_url(wk_redis).flushdb()  # each test starts with empty queues
    return {"WHOLEDOC_DATABASE_URL": wk_pg_url, "WHOLEDOC_BLOB_URL": f"file://{tmp_path / 'blobs'}",
            "WHOLEDOC_BROKER_URL": wk_redis, "WHOLEDOC_INFERENCE_URL": llm.base_url, "WHOLEDOC_MODEL": llm.model,
            "WHOLEDOC_LEASE_SECONDS": "2", "WHOLEDOC_RECONCILE_SECONDS": "1", "WHOLEDOC_HOME": str(tmp_path)}


@pytest.fixture
def records(wk_pg_url):
    engine = make_engine(wk_pg_url)
    yield session_factory(engine)
    engine.dispose()


@pytest.fixture
def blobs(wk_env):
    return blob_store_from_url(wk_env["WHOLEDOC_BLOB_URL"])
