"""End to end over real processes: uvicorn + a Celery worker + PostgreSQL + Redis + moto's S3 + an
OpenAI-compatible server. (tests/api/test_api_e2e_inference.py runs the flow on the real inference server.)"""

import json

import httpx
import pytest

from pipeline.records.db import make_engine, session_factory, transaction
from tests.api.helpers import job_finished, make_pdf, make_zip, upload, wait_job_http
from tests.helpers.services import redis_db, start_worker, stop, uvicorn_api
from tests.helpers.tenants import tenant_client, tenant_key
from tests.helpers.wait import wait_until
from tests.pipeline.faultserver import FaultServer, Reply

pytestmark = [pytest.mark.services, pytest.mark.slow]


def _wait(client, job_id, until):
    return wait_job_http(client, job_id, until, timeout=60, poll=0.1)


@pytest.fixture(scope="module")
def stack(pg_url, redis_url, moto_endpoint, tmp_path_factory):
    """(api base URL, fault server, records): everything a deployment has, each as its own process."""
    llm = FaultServer()
    logs = tmp_path_factory.mktemp("e2e")
    env = {"WHOLEDOC_DATABASE_URL": pg_url, "WHOLEDOC_BROKER_URL": redis_db(redis_url, 1),  # own queues
           "WHOLEDOC_BLOB_URL": f"s3://testing:testing@wholedoc-e2e?endpoint={moto_endpoint}&secure=0"
                                "&region=us-east-1",
           "WHOLEDOC_INFERENCE_URL": llm.base_url, "WHOLEDOC_MODEL": llm.model, "WHOLEDOC_LEASE_SECONDS": "3",
           "WHOLEDOC_SSE_POLL_SECONDS": "0.05", "WHOLEDOC_HOME": str(logs)}
    worker = start_worker(env, logs / "worker.log", name="e2e")
    engine = make_engine(pg_url)
    try:
        with uvicorn_api(env, logs / "uvicorn.log") as url:
            yield url, llm, session_factory(engine)
    finally:
        stop(worker)
        llm.close()
        engine.dispose()


def _client(stack) -> httpx.Client:
    url, _, records = stack
    return tenant_client(records, url, "e2e", timeout=30)


@pytest.mark.parametrize("data,name,anchor", [(make_pdf("Revenue grew", pages=2), "r.pdf", "p. 2"),
                                              (make_zip(), "repo.zip", "src/app.py:1")])
def test_upload_then_summarize_stores_a_result_with_usage(stack, data, name, anchor):
    _, llm, _ = stack
    client = _client(stack)
    doc = upload(client, data, name).json()
    assert _wait(client, doc["ingest_job_id"], job_finished)["state"] == "done"
    doc = client.get(f"/v1/documents/{doc['id']}").json()
    assert doc["status"] == "ready" and doc["num_tokens"] > 0
    llm.default = Reply(content=(f"Summary [{anchor}].",))
    job = client.post(f"/v1/documents/{doc['id']}/summaries", json={"style": "brief"}).json()
    job = _wait(client, job["id"], job_finished)
    assert job["state"] == "done" and job["result_id"], job
    result = client.get(f"/v1/results/{job['result_id']}").json()
    assert result["text"] == f"Summary [{anchor}]."
    assert result["usage"]["prompt_tokens"] == 100 and result["usage"]["cached_tokens"] == 64
    assert [c["status"] for c in result["citations"]] == ["unverified"]  # cited without a quote


def test_cancel_during_prefill_over_the_api(stack):
    _, llm, _ = stack
    client = _client(stack)
    doc = upload(client, make_pdf("long one")).json()
    _wait(client, doc["ingest_job_id"], job_finished)
    llm.default = Reply(progress=tuple((i * 10, 1000) for i in range(100)), chunk_delay=0.1)
    job = client.post(f"/v1/documents/{doc['id']}/questions", json={"question": "What is it?"}).json()
    _wait(client, job["id"], lambda j: (j["prefill_tokens_done"] or 0) > 0)
    assert client.post(f"/v1/jobs/{job['id']}/cancel").json()["state"] == "cancelled"
    wait_until(lambda: f"/v1/requests/job-{job['id']}-1" in llm.paths("DELETE"), 15,
               lambda: f"DELETE of the inference request (seen: {llm.paths('DELETE')})")
    final = client.get(f"/v1/jobs/{job['id']}").json()
    assert final["state"] == "cancelled" and final["result_id"] is None


def test_cli_summarize_and_ask_against_the_deployment(stack, tmp_path):
    """`wholedoc summarize` / `ask` with WHOLEDOC_API_URL + WHOLEDOC_API_KEY: upload, follow, print the result."""
    import os
    import subprocess
    import sys

    url, llm, records = stack
    tenant, key = tenant_key(records, "cli")
    pdf = tmp_path / "report.pdf"
    pdf.write_bytes(make_pdf("Revenue grew", pages=2))
    env = {**os.environ, "WHOLEDOC_API_URL": url, "WHOLEDOC_API_KEY": key}
    llm.default = Reply(content=("Revenue grew ", '[p. 2: "Revenue grew 2"].'), progress=((50, 100), (100, 100)))
    r = subprocess.run([sys.executable, "-m", "api.cli", "summarize", str(pdf)], env=env, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == 'Revenue grew [p. 2: "Revenue grew 2"].'
    for bar in ("upload", "extraction", "prefill", "generation"):
        assert bar in r.stderr, r.stderr
    assert "2 (verified)" in r.stderr and "64 cached" in r.stderr
    out = tmp_path / "summary.json"
    r = subprocess.run([sys.executable, "-m", "api.cli", "summarize", str(pdf), "--json", "-o", str(out)], env=env,
                       capture_output=True, text=True, timeout=120)
    assert (r.returncode, r.stdout) == (0, ""), r.stderr
    saved = json.loads(out.read_text())
    assert saved["text"] == 'Revenue grew [p. 2: "Revenue grew 2"].' and saved["kind"] == "summarize"
    assert saved["citations"][0]["anchor"] == "2" and saved["usage"]["cached_tokens"] == 64

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "api.cli", *args], env=env, capture_output=True, text=True,
                              timeout=120)

    listed = cli("documents")  # the same bytes uploaded twice are one document
    assert listed.returncode == 0 and listed.stdout.count(saved["document_id"]) == 1, listed.stderr
    assert "ready" in listed.stdout and "2 pages" in listed.stdout and "report.pdf" in listed.stdout
    jobs_page = json.loads(cli("jobs", "--json", "--limit", "200").stdout)
    assert saved["job_id"] in [j["id"] for j in jobs_page["data"]]
    again = cli("result", saved["id"], "--json")
    assert again.returncode == 0 and json.loads(again.stdout)["text"] == saved["text"]
    refused = cli("cancel", saved["job_id"])  # it is done: the API's conflict, said in one line
    assert refused.returncode == 1 and refused.stderr.startswith("error: ") and "Traceback" not in refused.stderr
    llm.default = Reply(content=("By id.",))
    by_id = cli("ask", saved["document_id"], "Asked by id?")  # a document id instead of a file: no upload
    assert (by_id.returncode, by_id.stdout.strip()) == (0, "By id."), by_id.stderr
    assert "upload" not in by_id.stderr
    llm.default = Reply(content=("It is a report.",))
    r = subprocess.run([sys.executable, "-m", "api.cli", "ask", str(pdf), "What is this?"], env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "It is a report.", r.stderr
    asked = [x.body for x in llm.received if x.path == "/v1/chat/completions"][-1]
    assert "What is this?" in asked["messages"][-1]["content"]
    bad = subprocess.run([sys.executable, "-m", "api.cli", "summarize", str(pdf)], capture_output=True, text=True,
                         env={**env, "WHOLEDOC_API_KEY": "wd_000000000000_wrong"}, timeout=60)
    assert bad.returncode == 1 and "unknown or revoked API key" in bad.stderr


def test_ctrl_c_in_the_cli_cancels_the_remote_job(stack, tmp_path):
    """Ctrl-C while `wholedoc summarize` follows a job on a deployment cancels that job there (not just the
    terminal): the job ends `cancelled` and the worker's inference request is dropped."""
    import os
    import signal
    import subprocess
    import sys

    from pipeline.records.models import Job

    url, llm, records = stack
    tenant, key = tenant_key(records, "cli")
    pdf = tmp_path / "slow.pdf"
    pdf.write_bytes(make_pdf("A long wait", pages=1))
    llm.default = Reply(content=("never",), hang=120)
    seen = len(llm.received)
    proc = subprocess.Popen([sys.executable, "-m", "api.cli", "summarize", str(pdf)], stderr=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "WHOLEDOC_API_URL": url, "WHOLEDOC_API_KEY": key})
    try:
        wait_until(lambda: any(x.path == "/v1/chat/completions" for x in llm.received[seen:]), 60,
                   "the worker's inference request")
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, stderr
    assert "cancelled job" in stderr and "Traceback" not in stderr
    with transaction(records) as s:
        job = s.query(Job).filter_by(tenant_id=tenant.id, kind="summarize").one()
        assert job.state == "cancelled"
