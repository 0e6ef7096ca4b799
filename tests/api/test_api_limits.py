"""Rate limits and quotas on real API processes (PostgreSQL, Redis): docs/reliability.md A3.

A burst over one key's limit gets 429 + Retry-After while another tenant's requests in the same window all
succeed; API processes sharing one Redis share each key's bucket; a tenant's LLM jobs are capped (queued +
running) and stop at its daily token budget, with nothing created by a refused request.
"""

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from pipeline.records import jobs
from pipeline.records.db import transaction
from pipeline.records.models import new_id
from pipeline.records.tenants import create_api_key, create_tenant
from pipeline.records.usage import next_day_start
from tests.api.helpers import finish, make_pdf, make_ready, upload
from tests.helpers.services import uvicorn_api

pytestmark = pytest.mark.services

BURST = 5  # with 1 request a minute, nothing refills during a test: exactly BURST requests pass per key
MAX_ACTIVE = 2
BUDGET = 1000


@pytest.fixture(scope="module")
def rate_limited_apis(api_env, tmp_path_factory):
    """Two API processes on the same PostgreSQL and Redis, each key limited to 1 request a minute, bursts of 5."""
    env = {**api_env, "WHOLEDOC_RATE_PER_MIN": "1", "WHOLEDOC_RATE_BURST": str(BURST)}
    logs = tmp_path_factory.mktemp("limits-logs")
    with uvicorn_api(env, logs / "a.log") as one, uvicorn_api(env, logs / "b.log") as two:
        yield one, two


@pytest.fixture(scope="module")
def quota_api(api_env, tmp_path_factory):
    env = {**api_env, "WHOLEDOC_MAX_ACTIVE_JOBS": str(MAX_ACTIVE), "WHOLEDOC_DAILY_TOKEN_BUDGET": str(BUDGET)}
    with uvicorn_api(env, tmp_path_factory.mktemp("quota-logs") / "api.log") as url:
        yield url


def _tenant(records) -> str:
    with transaction(records) as s:
        return create_tenant(s, f"t-{new_id()}").id


@pytest.fixture
def key_for(records):
    """key_for(tenant_id=None) → a new API key (for a new tenant unless one is given)."""
    def make(tenant_id: str | None = None) -> str:
        tenant_id = tenant_id or _tenant(records)
        with transaction(records) as s:
            return create_api_key(s, tenant_id)[1]
    return make


def _client(base: str, key: str) -> httpx.Client:
    return httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=30)


def _assert_rate_limited(r: httpx.Response) -> None:
    assert r.status_code == 429, r.text
    assert 1 <= int(r.headers["retry-after"]) <= 60
    assert r.json()["error"] == "rate_limited" and f"bursts of up to {BURST}" in r.json()["detail"]


def test_burst_on_one_key_is_refused_while_another_tenant_is_served(rate_limited_apis, key_for):
    base = rate_limited_apis[0]
    noisy, quiet = _client(base, key_for()), _client(base, key_for())
    with noisy, quiet, ThreadPoolExecutor(8) as pool:
        burst = [pool.submit(noisy.get, "/v1/documents") for _ in range(10 * BURST)]
        calm = [pool.submit(quiet.get, "/v1/jobs") for _ in range(BURST)]  # in the same window
        burst, calm = [f.result() for f in burst], [f.result() for f in calm]
    assert sorted(r.status_code for r in burst) == [200] * BURST + [429] * (9 * BURST)
    for r in burst:
        if r.status_code == 429:
            _assert_rate_limited(r)
    assert [r.status_code for r in calm] == [200] * BURST
    assert all(httpx.get(f"{base}/health").status_code == 200 for _ in range(3))  # health is exempt
    metrics = httpx.get(f"{base}/metrics").text
    assert 'wholedoc_rejections_total{reason="rate_limited"}' in metrics


def test_processes_sharing_redis_share_each_keys_bucket(rate_limited_apis, key_for):
    one, two = rate_limited_apis
    key = key_for()
    with _client(one, key) as a, _client(two, key) as b:
        codes = [c.get("/v1/documents").status_code for c in (a, b) * BURST]
        assert codes == [200] * BURST + [429] * BURST  # one bucket, not one per process
        _assert_rate_limited(a.get("/v1/documents"))


def test_limit_is_per_key_and_bad_keys_do_not_drain_it(rate_limited_apis, key_for, records):
    base = rate_limited_apis[0]
    tenant_id = _tenant(records)
    first, second = key_for(tenant_id), key_for(tenant_id)
    wrong = first[:-2] + ("xx" if not first.endswith("xx") else "yy")  # same prefix, wrong secret
    with _client(base, wrong) as bad:
        assert {bad.get("/v1/documents").status_code for _ in range(3 * BURST)} == {401}
    with _client(base, first) as a, _client(base, second) as b:
        assert [a.get("/v1/documents").status_code for _ in range(BURST + 1)] == [200] * BURST + [429]
        assert b.get("/v1/documents").status_code == 200


@pytest.fixture
def ready_doc(quota_api, key_for, records):
    """(client, document_id): a new tenant on the quota API with a ready document; client.tenant_id is set."""
    tenant_id = _tenant(records)
    client = _client(quota_api, key_for(tenant_id))
    client.tenant_id = tenant_id
    doc = upload(client, make_pdf()).json()
    make_ready(records, doc["id"])
    yield client, doc["id"]
    client.close()


def _llm_jobs(client) -> list[dict]:
    return [j for j in client.get("/v1/jobs").json()["data"] if j["kind"] != "ingest"]


def test_active_llm_jobs_are_capped_per_tenant(ready_doc, quota_api, key_for, records):
    client, doc_id = ready_doc
    first = [client.post(f"/v1/documents/{doc_id}/summaries", json={}) for _ in range(MAX_ACTIVE)]
    assert [r.status_code for r in first] == [202] * MAX_ACTIVE
    for path, body in (("summaries", {}), ("questions", {"question": "why?"})):
        r = client.post(f"/v1/documents/{doc_id}/{path}", json=body)
        assert r.status_code == 429, r.text
        assert r.json()["error"] == "too_many_active_jobs" and f"at most {MAX_ACTIVE}" in r.json()["detail"]
        assert int(r.headers["retry-after"]) >= 1
    # nothing was created by the refusals, nothing was lost of the admitted jobs
    assert sorted(j["id"] for j in _llm_jobs(client)) == sorted(r.json()["id"] for r in first)
    assert {j["state"] for j in _llm_jobs(client)} == {"queued"}
    # the cap is per tenant: another tenant still gets its jobs
    other = _client(quota_api, key_for())
    with other:
        doc = upload(other, make_pdf()).json()
        make_ready(records, doc["id"])
        assert other.post(f"/v1/documents/{doc['id']}/questions", json={"question": "q"}).status_code == 202
    # a finished job and a cancelled one each free a slot
    finish(records, first[0].json()["id"])
    assert client.post(f"/v1/documents/{doc_id}/summaries", json={}).status_code == 202
    assert client.post(f"/v1/documents/{doc_id}/summaries", json={}).status_code == 429
    assert client.post(f"/v1/jobs/{first[1].json()['id']}/cancel").status_code == 200
    assert client.post(f"/v1/documents/{doc_id}/questions", json={"question": "q"}).status_code == 202
    assert 'wholedoc_rejections_total{reason="too_many_active_jobs"}' in httpx.get(f"{quota_api}/metrics").text


def test_concurrent_submissions_never_exceed_the_cap(ready_doc):
    """Admissions lock the tenant row: simultaneous requests cannot all read 'below the cap' and all insert."""
    client, doc_id = ready_doc
    with ThreadPoolExecutor(16) as pool:
        codes = list(pool.map(lambda _: client.post(f"/v1/documents/{doc_id}/summaries", json={}).status_code,
                              range(16)))
    assert sorted(codes) == [202] * MAX_ACTIVE + [429] * (16 - MAX_ACTIVE)
    assert len(_llm_jobs(client)) == MAX_ACTIVE


def _seed_usage(records, tenant_id: str, usage: dict, created_at: datetime | None = None) -> None:
    """A finished job's result with this usage, as the worker stores it."""
    with transaction(records) as s:
        job = jobs.create_job(s, tenant_id, "answer")
        assert jobs.claim_job(s, job.id, "seed", 60) is not None
        jobs.finish_job(s, job.id, "seed", text="seeded", usage=usage)
        if created_at is not None:
            jobs.result_for_job(s, job.id).created_at = created_at


def test_daily_token_budget_refuses_new_llm_jobs_until_midnight_utc(ready_doc, records):
    client, doc_id = ready_doc
    tenant_id = client.tenant_id
    yesterday = datetime.now(UTC) - timedelta(days=1)
    _seed_usage(records, tenant_id, {"prompt_tokens": 50 * BUDGET, "completion_tokens": 10}, created_at=yesterday)
    # today: 1000 prompt tokens of which 100 cached, 99 completion tokens → 999 counted, just under the budget
    _seed_usage(records, tenant_id, {"prompt_tokens": 1000, "completion_tokens": 99, "cached_tokens": 100})
    assert client.post(f"/v1/documents/{doc_id}/summaries", json={}).status_code == 202
    _seed_usage(records, tenant_id, {"prompt_tokens": 3, "completion_tokens": 2})  # 1004 ≥ 1000
    before = len(_llm_jobs(client))
    for path, body in (("summaries", {}), ("questions", {"question": "why?"})):
        r = client.post(f"/v1/documents/{doc_id}/{path}", json=body)
        assert r.status_code == 429, r.text
        body = r.json()
        assert body["error"] == "token_budget_exhausted"
        assert "1,000 tokens" in body["detail"] and "1,004 tokens used today" in body["detail"]
        assert "resets at 00:00 UTC" in body["detail"]
        to_midnight = (next_day_start(datetime.now(UTC)) - datetime.now(UTC)).total_seconds()
        assert 1 <= int(r.headers["retry-after"]) and abs(int(r.headers["retry-after"]) - to_midnight) < 30
    assert len(_llm_jobs(client)) == before  # refused requests created nothing
    assert client.get("/v1/documents").status_code == 200  # only new LLM jobs are refused, reads still work
