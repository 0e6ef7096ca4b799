"""End to end on the real inference server (the `tiny` random-weight checkpoint) behind uvicorn, a Celery
worker, PostgreSQL, Redis and moto's S3: PDF and codebase summaries with usage, and a cancel that aborts a
running prefill."""

import subprocess
import sys
import time

import httpx
import pytest

from pipeline.records.db import make_engine, session_factory, transaction
from pipeline.records.models import new_id
from pipeline.records.tenants import create_api_key, create_tenant
from tests.api.helpers import job_finished, make_pdf, make_zip, upload, wait_job_http
from tests.conftest import free_port
from tests.pipeline.conftest import moto_endpoint  # noqa: F401
from tests.workers.services import start_worker, stop, uvicorn_api


@pytest.fixture(scope="module")
def real(api_pg_url, api_redis, moto_endpoint, tiny_checkpoint, tmp_path_factory):  # noqa: F811
    logs = tmp_path_factory.mktemp("e2e-real")
    port = free_port()
    # small prefill chunks and frequent progress comments so a prefill lasts long enough to be cancelled
    inference = subprocess.Popen([sys.executable, "-m", "inference.serve", "--checkpoint", str(tiny_checkpoint),
                                  "--port", str(port), "--max-num-batched-tokens", "4", "--progress-interval",
                                  "0.05", "--log-level", "warning"],
                                 stdout=(logs / "inference.log").open("wb"), stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while True:
        try:
            if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert inference.poll() is None and time.monotonic() < deadline, (logs / "inference.log").read_text()
        time.sleep(0.2)
    env = {"WHOLEDOC_DATABASE_URL": api_pg_url, "WHOLEDOC_BROKER_URL": api_redis.rsplit("/", 1)[0] + "/2",  # own queues
           "WHOLEDOC_BLOB_URL": f"s3://testing:testing@wholedoc-real?endpoint={moto_endpoint}&secure=0"
                                "&region=us-east-1",
           "WHOLEDOC_INFERENCE_URL": f"{base}/v1", "WHOLEDOC_LEASE_SECONDS": "2",
           "WHOLEDOC_SSE_POLL_SECONDS": "0.05", "WHOLEDOC_HOME": str(logs)}
    worker = start_worker(env, logs / "worker.log", name="real")
    engine = make_engine(api_pg_url)
    try:
        with uvicorn_api(env, logs / "uvicorn.log") as url:
            with transaction(session_factory(engine)) as s:
                tenant = create_tenant(s, f"real-{new_id()}")
                _, key = create_api_key(s, tenant.id)
            client = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=60)
            yield client, base
            client.close()
    finally:
        stop(worker)
        stop(inference)
        engine.dispose()



def _wait(client, job_id, until):
    return wait_job_http(client, job_id, until, timeout=120, poll=0.05)


def test_summary_on_the_tiny_checkpoint_stores_usage(real):
    client, _ = real
    doc = upload(client, make_pdf("Revenue grew", pages=2)).json()
    assert _wait(client, doc["ingest_job_id"], job_finished)["state"] == "done"
    job = client.post(f"/v1/documents/{doc['id']}/summaries", json={"style": "brief", "max_tokens": 8}).json()
    job = _wait(client, job["id"], job_finished)
    assert job["state"] == "done", job
    assert job["prefill_tokens_total"] and job["prefill_tokens_total"] > 50  # progress came from the server
    result = client.get(f"/v1/results/{job['result_id']}").json()
    assert result["usage"]["prompt_tokens"] == job["prefill_tokens_total"]
    assert 0 < result["usage"]["completion_tokens"] <= 8 and result["usage"]["cached_tokens"] is not None


def test_codebase_archive_summary_on_the_tiny_checkpoint(real):
    client, _ = real
    doc = upload(client, make_zip(), name="app.zip").json()
    ingested = _wait(client, doc["ingest_job_id"], job_finished)
    assert ingested["state"] == "done", ingested
    assert client.get(f"/v1/documents/{doc['id']}").json()["kind"] == "codebase"
    job = client.post(f"/v1/documents/{doc['id']}/summaries", json={"style": "brief", "max_tokens": 8}).json()
    job = _wait(client, job["id"], job_finished)
    assert job["state"] == "done", job
    result = client.get(f"/v1/results/{job['result_id']}").json()
    assert result["usage"]["prompt_tokens"] == job["prefill_tokens_total"] > 100  # the packed file went in whole
    assert 0 < result["usage"]["completion_tokens"] <= 8


def test_cancel_aborts_the_prefill_on_the_server(real):
    client, base = real
    doc = upload(client, make_pdf("A long document to prefill slowly. " * 40, pages=20)).json()
    assert _wait(client, doc["ingest_job_id"], job_finished)["state"] == "done"
    job = client.post(f"/v1/documents/{doc['id']}/questions", json={"question": "What is it?",
                                                                    "max_tokens": 8}).json()
    running = _wait(client, job["id"], lambda j: (j["prefill_tokens_done"] or 0) > 0 or job_finished(j))
    assert running["state"] == "running", running
    assert running["prefill_tokens_done"] < running["prefill_tokens_total"]
    assert client.post(f"/v1/jobs/{job['id']}/cancel").json()["state"] == "cancelled"
    rid = f"job-{job['id']}-1"
    deadline = time.monotonic() + 15
    while True:
        status = httpx.get(f"{base}/v1/requests/{rid}", timeout=5).json()
        if status.get("state") == "aborted":
            break
        assert time.monotonic() < deadline, f"the server's request was not aborted: {status}"
        time.sleep(0.1)
    assert status["prefill_tokens_done"] < status["prefill_tokens_total"]  # stopped during prefill
    assert client.get(f"/v1/jobs/{job['id']}").json()["result_id"] is None
