"""A real API: uvicorn on PostgreSQL, a local blob folder and a private Redis broker (no worker consumes)."""

import subprocess
import sys

import httpx
import pytest

from pipeline.records.db import make_engine, session_factory, transaction
from pipeline.records.models import new_id
from pipeline.records.scratch import postgres_reachable, scratch_postgres
from pipeline.records.tenants import create_api_key, create_tenant
from tests.conftest import need_service
from tests.workers.services import redis_server, uvicorn_api

MAX_UPLOAD = 256 * 1024


@pytest.fixture(scope="session")
def api_pg_url():
    if not postgres_reachable():
        need_service("postgresql", "127.0.0.1:5432 (user postgres) holds the records")
    with scratch_postgres() as url:
        yield url


@pytest.fixture(scope="session")
def api_redis(tmp_path_factory):
    with redis_server(tmp_path_factory.mktemp("redis")) as url:
        yield url


@pytest.fixture(scope="session")
def api_env(api_pg_url, api_redis, tmp_path_factory):
    blobs = tmp_path_factory.mktemp("blobs")
    return {"WHOLEDOC_DATABASE_URL": api_pg_url, "WHOLEDOC_BLOB_URL": f"file://{blobs}",
            "WHOLEDOC_BROKER_URL": api_redis, "WHOLEDOC_MAX_UPLOAD_BYTES": str(MAX_UPLOAD),
            "WHOLEDOC_SSE_POLL_SECONDS": "0.05"}


@pytest.fixture(scope="session")
def api_url(api_env, tmp_path_factory):
    with uvicorn_api(api_env, tmp_path_factory.mktemp("logs") / "uvicorn.log") as url:
        yield url


@pytest.fixture(scope="session")
def records(api_pg_url):
    engine = make_engine(api_pg_url)
    yield session_factory(engine)
    engine.dispose()


@pytest.fixture
def make_client(api_url, records):
    """make_client() → an httpx client authenticated as a brand-new tenant (client.tenant_id is set)."""
    clients = []

    def make() -> httpx.Client:
        with transaction(records) as s:
            tenant = create_tenant(s, f"t-{new_id()}")
            _, key = create_api_key(s, tenant.id)
        client = httpx.Client(base_url=api_url, headers={"Authorization": f"Bearer {key}"}, timeout=30)
        client.tenant_id = tenant.id
        clients.append(client)
        return client

    yield make
    for c in clients:
        c.close()


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory):
    out = tmp_path_factory.mktemp("ckpt") / "tiny"
    r = subprocess.run([sys.executable, "-m", "inference.devcheckpoint", "--out", str(out), "--preset", "tiny"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    return out
