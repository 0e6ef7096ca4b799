"""Documents longer than the window, on real processes (docs/over-window.md): the inference server on the `tiny`
checkpoint with a 4,096-token window, uvicorn, a Celery worker, PostgreSQL, Redis and moto's S3. A generated 40-page
PDF (about 8,800 tokens) is refused before anything is queued; with `over_window: "sections"` it is summarized in
parts then combined, or asked about over the most relevant pages; cancel during part 2 aborts that part's request;
the command line prints the refusal and exits 1, and summarizes in sections end to end."""

import os
import subprocess
import sys

import httpx
import pytest

from pipeline.records.db import make_engine, session_factory
from tests.api.helpers import job_finished, upload, wait_job_http, wait_request_aborted
from tests.helpers.long_pdf import long_pdf, topic_pages
from tests.helpers.services import free_port, redis_db, start_worker, stop, uvicorn_api, wait_healthy
from tests.helpers.tenants import tenant_client

pytestmark = [pytest.mark.services, pytest.mark.slow]
WINDOW = 4096
PAGES = 40


@pytest.fixture(scope="module")
def stack(pg_url, redis_url, moto_endpoint, tiny_checkpoint, tmp_path_factory):
    logs = tmp_path_factory.mktemp("over-window")
    port = free_port()
    # prefill in chunks of 64 tokens: a part (about 3,000 tokens) takes seconds, long enough to cancel mid-part
    inference = subprocess.Popen([sys.executable, "-m", "inference.serve", "--checkpoint", str(tiny_checkpoint),
                                  "--port", str(port), "--max-model-len", str(WINDOW), "--max-num-batched-tokens",
                                  "64", "--progress-interval", "0.05", "--log-level", "info"],
                                 stdout=(logs / "inference.log").open("wb"), stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    wait_healthy(base, inference, f"inference server (log: {logs / 'inference.log'})", 180)
    env = {"WHOLEDOC_DATABASE_URL": pg_url, "WHOLEDOC_BROKER_URL": redis_db(redis_url, 9),  # own queues
           "WHOLEDOC_BLOB_URL": f"s3://testing:testing@wholedoc-over-window?endpoint={moto_endpoint}&secure=0"
                                "&region=us-east-1",
           "WHOLEDOC_INFERENCE_URL": f"{base}/v1", "WHOLEDOC_LEASE_SECONDS": "2",
           "WHOLEDOC_SSE_POLL_SECONDS": "0.05", "WHOLEDOC_HOME": str(logs)}
    # the worker is configured with a larger window than the server's: the endpoint's own (4,096) must win
    worker = start_worker(env | {"WHOLEDOC_MAX_MODEL_LEN": "100000"}, logs / "worker.log", name="over-window")
    engine = make_engine(pg_url)
    try:
        with uvicorn_api(env | {"WHOLEDOC_MAX_MODEL_LEN": str(WINDOW)}, logs / "uvicorn.log") as url:
            client = tenant_client(session_factory(engine), url, "over-window")
            yield client, base
            client.close()
    finally:
        stop(worker)
        stop(inference)
        engine.dispose()


def _wait(client, job_id, until=job_finished, timeout=180):
    return wait_job_http(client, job_id, until, timeout=timeout, poll=0.05)


def _ready(client, data: bytes, name: str) -> dict:
    doc = upload(client, data, name=name).json()
    assert _wait(client, doc["ingest_job_id"])["state"] == "done"
    return client.get(f"/v1/documents/{doc['id']}").json()


@pytest.fixture(scope="module")
def big(stack) -> dict:
    """The 40-page document, ingested: about 8,800 tokens, twice the window."""
    client, _ = stack
    doc = _ready(client, long_pdf(PAGES), "long.pdf")
    assert doc["num_pages"] == PAGES and doc["num_tokens"] > 2 * WINDOW
    return doc


def _jobs_of(client, doc_id: str) -> list[dict]:
    return client.get("/v1/jobs", params={"document_id": doc_id, "limit": 100}).json()["data"]


def test_over_the_window_is_refused_with_both_counts_and_nothing_is_queued(stack, big):
    client, _ = stack
    for route, body in (("summaries", {"style": "brief"}), ("questions", {"question": "What did they measure?"})):
        r = client.post(f"/v1/documents/{big['id']}/{route}", json=body)
        assert r.status_code == 400, r.text
        out = r.json()
        assert out["error"] == "document_too_long"
        assert (out["document_tokens"], out["window_tokens"]) == (big["num_tokens"], WINDOW)
        assert out["needed_tokens"] > big["num_tokens"] + 300  # the prompt's framing and the answer's room
        detail = out["detail"]
        assert f"the document is {big['num_tokens']:,} tokens" in detail
        assert f"it needs {out['needed_tokens']:,}, the window is 4,096" in detail
        assert "--over-window sections" in detail and '"over_window": "sections"' in detail
    assert [j["kind"] for j in _jobs_of(client, big["id"])] == ["ingest"]  # nothing was queued


def test_the_job_checks_the_exact_prompt_before_sending_it(stack):
    """16 pages (about 3,450 tokens) pass the API's check on the token count alone (+ a 512-token answer < 4,096),
    but not with the prompt's framing: the job fails at once with the counts, and no request reached the server."""
    client, base = stack
    doc = _ready(client, long_pdf(16), "medium.pdf")
    assert doc["num_tokens"] + 512 <= WINDOW < doc["num_tokens"] + 512 + 300
    job = client.post(f"/v1/documents/{doc['id']}/summaries", json={"style": "brief"})
    assert job.status_code == 202, job.text
    job = _wait(client, job.json()["id"])
    assert job["state"] == "failed" and job["attempts"] == 1
    assert f"the document is {doc['num_tokens']:,} tokens" in job["error"] and "the window is 4,096" in job["error"]
    assert "--over-window sections" in job["error"]
    assert httpx.get(f"{base}/v1/requests/job-{job['id']}-1", timeout=5).status_code == 404  # never sent


def test_a_summary_in_sections_names_its_parts_and_adds_up_their_usage(stack, big):
    client, base = stack
    posted = client.post(f"/v1/documents/{big['id']}/summaries",
                         json={"style": "brief", "max_tokens": 8, "over_window": "sections"})
    assert posted.status_code == 202, posted.text
    seen: list[dict] = []

    def record(job):
        seen.append(job)
        return job_finished(job)

    job = _wait(client, posted.json()["id"], record)
    assert job["state"] == "done", job
    parts = job["parts"]
    n = len(parts)
    assert n >= 3 and all(p["state"] == "done" for p in parts)
    # whole pages, in order, every page once: part k+1 starts the page after part k ends
    assert parts[0]["first"] == "1" and parts[-1]["last"] == str(PAGES)
    assert all(int(b["first"]) == int(a["last"]) + 1 for a, b in zip(parts, parts[1:]))
    assert all(p["prompt_tokens"] + 8 <= WINDOW for p in parts)
    # progress went through the parts one after another, each with its own prefill counts
    running = [(p["part"], p["prefill_tokens_total"]) for j in seen for p in j.get("parts") or ()
               if p["state"] == "running"]
    assert {k for k, _ in running} >= {1, 2} and all(total for _, total in running)
    assert any(j["stage"] == "combine" for j in seen)
    result = client.get(f"/v1/results/{job['result_id']}").json()
    coverage = result["coverage"]
    assert coverage["mode"] == "parts" and coverage["window_tokens"] == WINDOW
    assert [p["span"] for p in coverage["parts"]] == [p["span"] for p in parts]
    assert parts[0]["span"] == f"pages 1-{parts[0]['last']}"
    assert result["notice"].startswith(f"built from {n} parts (pages 1-")
    usages = [p["usage"] for p in coverage["parts"]] + [coverage["combine"]["usage"]]
    for key in ("prompt_tokens", "completion_tokens"):
        assert result["usage"][key] == sum(u[key] for u in usages)
    assert all(0 < u["completion_tokens"] <= 8 for u in usages)
    assert result["usage"]["requests"] == n + 1
    # each part's request ran on the server under its own id, and finished
    for p in parts:
        status = httpx.get(f"{base}/v1/requests/job-{job['id']}-1-part{p['part']}", timeout=5).json()
        assert status["state"] == "finished", status


def test_a_question_in_sections_is_answered_from_the_most_relevant_pages(stack, big):
    client, _ = stack
    posted = client.post(f"/v1/documents/{big['id']}/questions",
                         json={"question": "What did the glacier team measure?", "max_tokens": 4,
                               "over_window": "sections"})
    assert posted.status_code == 202, posted.text
    job = _wait(client, posted.json()["id"])
    assert job["state"] == "done", job
    result = client.get(f"/v1/results/{job['result_id']}").json()
    coverage = result["coverage"]
    included, left_out = coverage["included"], coverage["left_out"]
    assert set(topic_pages("glacier", PAGES)) <= {int(a) for a in included}
    assert left_out and sorted(int(a) for a in included + left_out) == list(range(1, PAGES + 1))
    assert [int(a) for a in included] == sorted(int(a) for a in included)  # packed in document order
    assert result["notice"].startswith(f"answered from {coverage['included_spans']}")
    assert result["usage"]["prompt_tokens"] + 4 <= WINDOW


def test_cancel_during_part_2_stops_the_job_and_aborts_its_request(stack):
    client, base = stack
    # another edition: the parts summarized above are in the server's prefix cache, these must be prefilled
    doc = _ready(client, long_pdf(PAGES, edition=2), "long-2.pdf")
    posted = client.post(f"/v1/documents/{doc['id']}/summaries",
                         json={"style": "brief", "max_tokens": 8, "over_window": "sections"}).json()

    def in_part_2(job):
        parts = job.get("parts") or []
        return job_finished(job) or (len(parts) > 1 and parts[1]["state"] == "running"
                                     and (parts[1]["prefill_tokens_done"] or 0) > 0)

    job = _wait(client, posted["id"], in_part_2)
    assert job["state"] == "running" and job["parts"][0]["state"] == "done", job
    assert client.post(f"/v1/jobs/{job['id']}/cancel").json()["state"] == "cancelled"
    status = wait_request_aborted(base, f"job-{job['id']}-1-part2", "part 2's request")
    assert status["prefill_tokens_done"] < status["prefill_tokens_total"]  # stopped mid-prefill
    stopped = client.get(f"/v1/jobs/{job['id']}").json()
    assert stopped["state"] == "cancelled" and stopped["result_id"] is None
    assert stopped["parts"][1]["state"] == "stopped"
    assert [p["state"] for p in stopped["parts"][2:]] == ["pending"] * (len(stopped["parts"]) - 2)
    assert httpx.get(f"{base}/v1/requests/job-{job['id']}-1-part3", timeout=5).status_code == 404  # never sent


def _cli(client, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WHOLEDOC_")}
    env |= {"WHOLEDOC_API_URL": str(client.base_url), "WHOLEDOC_API_KEY": client.key}
    return subprocess.run([sys.executable, "-m", "api.cli", *args], env=env, capture_output=True, text=True,
                          timeout=300)


def test_cli_prints_the_refusal_and_exits_1(stack, big, tmp_path):
    client, _ = stack
    pdf = tmp_path / "long.pdf"
    pdf.write_bytes(long_pdf(PAGES))  # the same bytes: the document already there is reused
    r = _cli(client, "summarize", str(pdf))
    assert r.returncode == 1, r.stderr
    assert f"the document is {big['num_tokens']:,} tokens" in r.stderr and "the window is 4,096" in r.stderr
    assert "--over-window sections" in r.stderr and r.stdout == ""
    r = _cli(client, "ask", big["id"], "What grew?")
    assert r.returncode == 1 and "--over-window sections" in r.stderr


def test_cli_summarizes_in_sections_end_to_end(stack, big, tmp_path):
    import json

    client, _ = stack
    pdf = tmp_path / "long.pdf"
    pdf.write_bytes(long_pdf(PAGES))
    r = _cli(client, "summarize", str(pdf), "--over-window", "sections", "--max-tokens", "8", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    parts = out["coverage"]["parts"]
    assert len(parts) >= 3 and parts[0]["first"] == "1" and parts[-1]["last"] == str(PAGES)
    assert out["notice"].startswith(f"built from {len(parts)} parts")
    r = _cli(client, "ask", big["id"], "Which harbor notes?", "--over-window", "sections", "--max-tokens", "4",
             "--json")
    assert r.returncode == 0, r.stderr
    answer = json.loads(r.stdout)
    assert answer["state"] == "done", answer
