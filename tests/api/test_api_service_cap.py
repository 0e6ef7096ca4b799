"""The service-wide cap on active LLM jobs (all tenants together): past it, 503 + Retry-After, nothing created; two
API processes racing on one PostgreSQL never admit more than the cap (advisory lock)."""

from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from pipeline.records.db import make_engine, session_factory, transaction
from pipeline.records.tenants import create_api_key, create_tenant
from pipeline.records.usage import active_llm_jobs
from tests.api.helpers import finish, make_pdf, make_ready, upload
from tests.helpers.services import uvicorn_api

pytestmark = pytest.mark.services

TOTAL = 3


@pytest.fixture(scope="module")
def capped(api_env, scratch_pg, tmp_path_factory):
    """Two API processes on their own database (no other test's jobs count), at most TOTAL active LLM jobs."""
    url = scratch_pg()
    engine = make_engine(url)
    env = {**api_env, "WHOLEDOC_DATABASE_URL": url, "WHOLEDOC_MAX_ACTIVE_JOBS_TOTAL": str(TOTAL),
           "WHOLEDOC_MAX_ACTIVE_JOBS": "0"}
    logs = tmp_path_factory.mktemp("service-cap")
    with uvicorn_api(env, logs / "a.log") as a, uvicorn_api(env, logs / "b.log") as b:
        yield (a, b), session_factory(engine)
    engine.dispose()


def _tenant_client(base: str, records, name: str) -> tuple[httpx.Client, str]:
    with transaction(records) as s:
        key = create_api_key(s, create_tenant(s, name).id)[1]
    client = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=30)
    doc = upload(client, make_pdf()).json()
    make_ready(records, doc["id"])
    return client, doc["id"]


def test_past_the_service_cap_every_tenant_gets_503_and_nothing_is_created(capped):
    (a, b), records = capped
    tenants = [_tenant_client(base, records, f"cap-{i}") for i, base in enumerate((a, b, a, b))]
    with ThreadPoolExecutor(8) as pool:  # 8 submissions from 4 tenants through 2 processes at once
        rs = list(pool.map(lambda i: tenants[i % 4][0].post(f"/v1/documents/{tenants[i % 4][1]}/summaries",
                                                            json={}), range(8)))
    assert sorted(r.status_code for r in rs) == [202] * TOTAL + [503] * (8 - TOTAL)
    busy = next(r for r in rs if r.status_code == 503)
    assert busy.json()["error"] == "service_busy" and f"limit of {TOTAL}" in busy.json()["detail"]
    assert int(busy.headers["retry-after"]) >= 1
    with records() as s:
        assert active_llm_jobs(s, None) == TOTAL  # the refusals created nothing
    finish(records, next(r for r in rs if r.status_code == 202).json()["id"])  # a slot frees up
    client, doc_id = tenants[0]
    assert client.post(f"/v1/documents/{doc_id}/questions", json={"question": "q"}).status_code == 202
    assert client.post(f"/v1/documents/{doc_id}/questions", json={"question": "q"}).status_code == 503
    assert 'wholedoc_rejections_total{reason="service_busy"}' in httpx.get(f"{a}/metrics").text
    for c, _ in tenants:
        c.close()
