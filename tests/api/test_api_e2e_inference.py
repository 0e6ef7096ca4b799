"""End to end on the real inference server (the `tiny` random-weight checkpoint) behind uvicorn, a Celery
worker, PostgreSQL, Redis and moto's S3: PDF and codebase summaries with usage, and a cancel that aborts a
running prefill; two tenants asking about the same document share no prefix cache (cache_salt); one job's ids
are found in the logs of all three processes."""

import json
import os
import subprocess
import sys

import httpx
import pytest

from pipeline.pdf import extract_pdf
from pipeline.prompts import question_prompt
from pipeline.records.db import make_engine, session_factory, transaction
from pipeline.records.models import new_id
from pipeline.records.tenants import create_api_key, create_tenant
from tests.api.helpers import job_finished, make_pdf, make_zip, upload, wait_job_http, wait_request_aborted
from tests.helpers.services import free_port, redis_db, start_worker, stop, uvicorn_api, wait_healthy
from tests.helpers.tenants import tenant_client
from workers.settings import WorkerSettings

pytestmark = [pytest.mark.services, pytest.mark.slow]


@pytest.fixture(scope="module")
def real(pg_url, redis_url, moto_endpoint, tiny_checkpoint, tmp_path_factory):
    logs = tmp_path_factory.mktemp("e2e-real")
    port = free_port()
    # small prefill chunks and frequent progress comments so a prefill lasts long enough to be cancelled
    inference = subprocess.Popen([sys.executable, "-m", "inference.serve", "--checkpoint", str(tiny_checkpoint),
                                  "--port", str(port), "--max-num-batched-tokens", "4", "--progress-interval",
                                  "0.05", "--log-level", "info"],
                                 stdout=(logs / "inference.log").open("wb"), stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    wait_healthy(base, inference, f"inference server (log: {logs / 'inference.log'})", 180)
    env = {"WHOLEDOC_DATABASE_URL": pg_url, "WHOLEDOC_BROKER_URL": redis_db(redis_url, 2),  # own queues
           "WHOLEDOC_BLOB_URL": f"s3://testing:testing@wholedoc-real?endpoint={moto_endpoint}&secure=0"
                                "&region=us-east-1",
           "WHOLEDOC_INFERENCE_URL": f"{base}/v1", "WHOLEDOC_LEASE_SECONDS": "2",
           "WHOLEDOC_SSE_POLL_SECONDS": "0.05", "WHOLEDOC_HOME": str(logs)}
    worker = start_worker(env, logs / "worker.log", name="real")
    engine = make_engine(pg_url)
    try:
        with uvicorn_api(env, logs / "uvicorn.log") as url:
            client = tenant_client(session_factory(engine), url, "real")
            client.logs = logs
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


def _json_lines(path, needle: str) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if needle in line and line.startswith("{")]


def test_one_job_is_followed_across_the_api_worker_and_inference_logs(real):
    """grep one job id: the API's line (tenant, and the HTTP request's X-Request-Id), the worker's lines (job,
    tenant, the inference request id it sent) and the inference server's line for that request id."""
    client, _ = real
    doc = upload(client, make_pdf("Follow me through the logs")).json()
    assert _wait(client, doc["ingest_job_id"], job_finished)["state"] == "done"
    posted = client.post(f"/v1/documents/{doc['id']}/questions", json={"question": "Who?", "max_tokens": 2})
    job = _wait(client, posted.json()["id"], job_finished)
    assert job["state"] == "done", job
    rid = f"job-{job['id']}-1"
    api = _json_lines(client.logs / "uvicorn.log", job["id"])
    queued = next(e for e in api if e["event"] == "job queued")
    assert (queued["job_id"], queued["tenant_id"], queued["kind"]) == (job["id"], client.tenant_id, "answer")
    assert queued["http_request_id"] == posted.headers["x-request-id"] and queued["level"] == "info"
    worker = _json_lines(client.logs / "worker.log", job["id"])
    assert {"job started", "job ended"} <= {e["event"] for e in worker}
    assert all(e["tenant_id"] == client.tenant_id for e in worker if "job_id" in e)
    sent = [e for e in worker if e.get("request_id") == rid]
    assert sent and sent[0]["job_id"] == job["id"] and sent[0]["logger"] == "pipeline.client.client"
    assert any(f"request_id={rid} POST /v1/chat/completions" in line
               for line in (client.logs / "inference.log").read_text().splitlines())
    result = client.get(f"/v1/results/{job['result_id']}").json()
    assert result["usage"]["request_id"] == rid  # the same id is on the result


def test_cli_asks_many_questions_about_one_document_at_once(real, tmp_path):
    """`wholedoc ask FILE q1 q2 --questions-file F --json` against the deployment: one upload, every question its own
    job submitted at once, answers printed in order as JSON lines; later questions reuse the document's cache."""
    client, _ = real
    pdf = tmp_path / "report.pdf"
    pdf.write_bytes(make_pdf("Quarterly revenue and costs by region", pages=3))
    listed = tmp_path / "questions.txt"
    listed.write_text("# more questions\nWhat about costs?\n\nAnd the outlook?\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("WHOLEDOC_")}
    env |= {"WHOLEDOC_API_URL": str(client.base_url),
            "WHOLEDOC_API_KEY": client.headers["authorization"].removeprefix("Bearer ")}
    r = subprocess.run([sys.executable, "-m", "api.cli", "ask", str(pdf), "What grew?", "Which region?",
                        "--questions-file", str(listed), "--json", "--max-tokens", "3"],
                       env=env, capture_output=True, text=True, timeout=240)
    assert r.returncode == 0, r.stderr
    answers = [json.loads(line) for line in r.stdout.splitlines()]
    assert [a["question"] for a in answers] == ["What grew?", "Which region?", "What about costs?", "And the outlook?"]
    assert all(a["state"] == "done" and isinstance(a["answer"], str) for a in answers), answers
    assert all(0 < a["usage"]["completion_tokens"] <= 3 for a in answers)
    assert sum(1 for a in answers if a["usage"]["cached_tokens"]) >= 3  # the document was prefilled once
    docs = [d for d in client.get("/v1/documents").json()["data"] if d["filename"] == "report.pdf"]
    assert len(docs) == 1  # one upload for all four questions


def test_cli_ask_without_a_question_says_so(tmp_path):
    r = subprocess.run([sys.executable, "-m", "api.cli", "ask", str(tmp_path / "x.pdf")], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 2 and "at least one question" in r.stderr


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
    status = wait_request_aborted(base, f"job-{job['id']}-1", "the server's request")
    assert status["prefill_tokens_done"] < status["prefill_tokens_total"]  # stopped during prefill
    assert client.get(f"/v1/jobs/{job['id']}").json()["result_id"] is None


def test_tenants_asking_about_the_same_document_share_no_prefix_cache(real, pg_url):
    """I5: tenant B's question on the document A asked about gets 0 cached tokens (each job carries its tenant's
    cache_salt); A's own second question hits its cache, as the probe under A's salt predicted."""
    client, base = real
    engine = make_engine(pg_url)
    with transaction(session_factory(engine)) as s:
        tenants = [create_tenant(s, f"salt-{name}-{new_id()}").id for name in "ab"]
        keys = [create_api_key(s, t)[1] for t in tenants]
    engine.dispose()
    line = "Vendor Aldous invoiced 1200 for cables; vendor Brandt disputes 300 of it."
    pdf = make_pdf("\n".join(f"{line} ({i})" for i in range(12)), pages=2)  # ~750 prompt tokens: 5 full blocks
    a, b = (httpx.Client(base_url=client.base_url, headers={"Authorization": f"Bearer {k}"}, timeout=60) for k in keys)

    def ask(who: httpx.Client, doc_id: str, question: str) -> dict:
        job = who.post(f"/v1/documents/{doc_id}/questions", json={"question": question, "max_tokens": 2}).json()
        job = _wait(who, job["id"], job_finished)
        assert job["state"] == "done", job
        return who.get(f"/v1/results/{job['result_id']}").json()["usage"]

    def probe(question: str, salt: str | None) -> dict:
        """The server's cache probe for the prompt a worker sends (same builder, thinking off as the API default)."""
        messages = question_prompt(extract_pdf(pdf), question).messages
        body = {"messages": messages, "thinking": {"type": "disabled"}} | ({"cache_salt": salt} if salt else {})
        return httpx.post(f"{base}/v1/cache/probe", json=body, timeout=30).json()

    with a, b:
        docs = []
        for who in (a, b):
            doc = upload(who, pdf).json()
            assert _wait(who, doc["ingest_job_id"], job_finished)["state"] == "done"
            docs.append(doc["id"])
        first = ask(a, docs[0], "Which vendor disputes an amount?")
        assert first["cached_tokens"] == 0 and first["prompt_tokens"] > 5 * 128
        other = ask(b, docs[1], "Which vendor disputes an amount?")  # the very prompt A's job sent
        assert other["prompt_tokens"] == first["prompt_tokens"] and other["cached_tokens"] == 0
        salt_a = WorkerSettings().cache_salt(tenants[0])  # the workers' dev default secret
        unsalted, predicted = probe("How much is disputed?", None), probe("How much is disputed?", salt_a)
        again = ask(a, docs[0], "How much is disputed?")
    assert unsalted["cached_tokens"] == 0  # nothing was cached without a salt: every job sent its tenant's
    assert predicted["prompt_tokens"] == again["prompt_tokens"]  # the probe saw the worker's exact prompt
    assert 0 < again["cached_tokens"] == predicted["cached_tokens"]  # A's own cache: a hit, as predicted
