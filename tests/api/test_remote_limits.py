"""The command line's client (api.cli.remote.ApiClient) against a rate-limited API process: a short 429 is waited out
(Retry-After) and the request sent again; a long one (the active-jobs cap) is raised at once with its message."""

import time

import pytest

from api.cli.remote import ApiClient, ApiError
from pipeline.records.db import transaction
from pipeline.records.tenants import create_api_key, create_tenant
from tests.api.helpers import make_pdf, make_ready
from tests.helpers.services import uvicorn_api

pytestmark = [pytest.mark.services, pytest.mark.slow]


@pytest.fixture(scope="module")
def limited_api(api_env, tmp_path_factory):
    """1 request a second per key with bursts of 2; at most one active LLM job per tenant."""
    env = {**api_env, "WHOLEDOC_RATE_PER_MIN": "60", "WHOLEDOC_RATE_BURST": "2", "WHOLEDOC_MAX_ACTIVE_JOBS": "1"}
    with uvicorn_api(env, tmp_path_factory.mktemp("remote-limits") / "api.log") as url:
        yield url


def test_short_429s_are_waited_out_and_long_ones_raised(limited_api, records, tmp_path):
    with transaction(records) as s:
        key = create_api_key(s, create_tenant(s, "remote-limits").id)[1]
    pdf = tmp_path / "doc.pdf"
    pdf.write_bytes(make_pdf("limits"))
    sleeps = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        time.sleep(seconds)

    client = ApiClient(limited_api, key, max_wait=5, sleep=sleep)
    with client.http:
        doc = client.upload(pdf)
        make_ready(records, doc["id"])
        for _ in range(4):  # bursts of 2 at 1/s: the client must wait between these, never fail
            assert client.document(doc["id"])["id"] == doc["id"]
        assert sleeps and all(1 <= s <= 5 for s in sleeps) and client.waited == sum(sleeps)
        first = client.summarize(doc["id"])
        n = len(sleeps)
        with pytest.raises(ApiError) as err:  # the cap's Retry-After (10 s) is above max_wait: no waiting
            client.summarize(doc["id"])
        assert err.value.status == 429 and "active" in str(err.value)
        assert all(s <= 5 for s in sleeps[n:])  # only rate-limit waits, never the cap's 10 s
        assert client.job(first["id"])["state"] == "queued"
