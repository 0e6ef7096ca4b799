"""The per-key token bucket: in-process (embedded mode) and in Redis (shared), and which one an API gets."""

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from api.rate_limit import LocalBuckets, RedisBuckets, Unlimited, make_limiter
from api.settings import ApiSettings
from pipeline.records.db import make_engine, session_factory, transaction, upgrade
from pipeline.records.tenants import create_api_key, create_tenant
from tests.helpers.services import free_port


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_local_bucket_allows_a_burst_then_refills_at_the_rate():
    clock = Clock()
    buckets = LocalBuckets(rate_per_min=60, burst=3, clock=clock)  # one token a second
    assert [buckets.take("k").allowed for _ in range(4)] == [True, True, True, False]
    assert buckets.take("k").retry_after == 1
    assert buckets.take("other").allowed  # every key has its own bucket
    clock.now += 0.4
    refused = buckets.take("k")
    assert not refused.allowed and refused.retry_after == 1  # 0.6 s to go: whole seconds, at least 1
    clock.now += 0.6
    assert buckets.take("k").allowed and not buckets.take("k").allowed
    clock.now += 3600  # a long pause refills to the burst, never beyond
    assert [buckets.take("k").allowed for _ in range(4)] == [True, True, True, False]


def test_local_bucket_retry_after_counts_the_seconds_to_the_next_token():
    clock = Clock()
    buckets = LocalBuckets(rate_per_min=2, burst=1, clock=clock)  # one token per 30 s
    assert buckets.take("k").allowed
    assert buckets.take("k").retry_after == 30
    clock.now += 20.5
    assert buckets.take("k").retry_after == 10


@pytest.mark.services
def test_redis_buckets_are_shared_by_every_limiter_on_the_same_redis(redis_url):
    one, two = (RedisBuckets(redis_url, rate_per_min=1, burst=3) for _ in range(2))
    key = f"shared-{free_port()}"
    assert [one.take(key).allowed, two.take(key).allowed, one.take(key).allowed] == [True, True, True]
    refused = two.take(key)
    assert not refused.allowed and 1 <= refused.retry_after <= 60
    assert not one.take(key).allowed
    assert one.take(key + "-other").allowed


def test_redis_unreachable_lets_requests_through():
    """The limit protects capacity; a Redis outage must not turn every request into a 429 or a 500."""
    buckets = RedisBuckets(f"redis://127.0.0.1:{free_port()}/0", rate_per_min=1, burst=1)
    assert all(buckets.take("k").allowed for _ in range(3))


@pytest.mark.parametrize("env, kind", [
    ({}, LocalBuckets),
    ({"WHOLEDOC_BROKER_URL": "sqla+sqlite:////tmp/broker.sqlite"}, LocalBuckets),
    ({"WHOLEDOC_BROKER_URL": "redis://127.0.0.1:1/0"}, RedisBuckets),
    ({"WHOLEDOC_BROKER_URL": "sqla+sqlite:////tmp/b.sqlite", "WHOLEDOC_REDIS_URL": "redis://127.0.0.1:1/1"},
     RedisBuckets),
    ({"WHOLEDOC_BROKER_URL": "redis://127.0.0.1:1/0", "WHOLEDOC_RATE_PER_MIN": "0"}, Unlimited),
])
def test_settings_pick_the_bucket_store(monkeypatch, tmp_path, env, kind):
    for name in ("WHOLEDOC_BROKER_URL", "WHOLEDOC_REDIS_URL", "WHOLEDOC_RATE_PER_MIN", "WHOLEDOC_RATE_BURST"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("WHOLEDOC_HOME", str(tmp_path))
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    s = ApiSettings.load()
    assert isinstance(make_limiter(s.rate_per_min, s.rate_burst, s.redis_url), kind)


def test_embedded_app_limits_each_key_in_process(tmp_path):
    """Embedded mode (SQLite, no Redis): the app's own bucket refuses the burst's excess with 429 + Retry-After."""
    url = f"sqlite:///{tmp_path / 'w.sqlite'}"
    upgrade(url)
    engine = make_engine(url)
    with transaction(session_factory(engine)) as s:
        tenant = create_tenant(s, "embedded")
        keys = [create_api_key(s, tenant.id)[1] for _ in range(2)]
    engine.dispose()
    app = create_app(ApiSettings(database_url=url, blob_url=f"file://{tmp_path / 'blobs'}", rate_per_min=1,
                                 rate_burst=2))
    assert isinstance(app.state.limiter, LocalBuckets)
    with TestClient(app) as client:
        first, second = ({"Authorization": f"Bearer {k}"} for k in keys)
        codes = [client.get("/v1/documents", headers=first).status_code for _ in range(3)]
        assert codes == [200, 200, 429]
        refused = client.get("/v1/jobs", headers=first)
        assert refused.status_code == 429 and 1 <= int(refused.headers["retry-after"]) <= 60
        body = refused.json()
        assert body["error"] == "rate_limited" and "(1 requests a minute, bursts of up to 2)" in body["detail"]
        assert client.get("/v1/documents", headers=second).status_code == 200  # the limit is per key
        assert all(client.get("/health").status_code == 200 for _ in range(5))  # exempt
        metrics = client.get("/metrics").text
        assert 'wholedoc_rejections_total{reason="rate_limited"} 2.0' in metrics
