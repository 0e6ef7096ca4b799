"""A real API: uvicorn on PostgreSQL, a local blob folder and a private Redis broker (no worker consumes)."""

import httpx
import pytest

from pipeline.records.db import make_engine, session_factory, transaction
from pipeline.records.models import new_id
from pipeline.records.tenants import create_api_key, create_tenant
from tests.api.helpers import MAX_JSON, MAX_UPLOAD
from tests.helpers.services import uvicorn_api


@pytest.fixture(scope="session")
def api_env(pg_url, redis_url, tmp_path_factory):
    """The API's environment: the session's database, Redis database 0 as the broker, a local blob folder."""
    blobs = tmp_path_factory.mktemp("blobs")
    return {"WHOLEDOC_DATABASE_URL": pg_url, "WHOLEDOC_BLOB_URL": f"file://{blobs}",
            "WHOLEDOC_BROKER_URL": redis_url, "WHOLEDOC_MAX_UPLOAD_BYTES": str(MAX_UPLOAD),
            "WHOLEDOC_MAX_JSON_BYTES": str(MAX_JSON),
            "WHOLEDOC_SSE_POLL_SECONDS": "0.05"}


@pytest.fixture(scope="session")
def api_url(api_env, tmp_path_factory):
    with uvicorn_api(api_env, tmp_path_factory.mktemp("logs") / "uvicorn.log") as url:
        yield url


@pytest.fixture(scope="session")
def records(pg_url):
    engine = make_engine(pg_url)
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
