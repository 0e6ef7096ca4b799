"""Batches end to end on real processes: the inference server on the `tiny` checkpoint, uvicorn, Celery workers (with
beat), PostgreSQL, Redis and moto's S3 (docs/batches.md).

- 3 documents x 4 questions: 12 items; per document, the cached prompt tokens of its 4 items add up to at least 3 x its
  document block rounded down to whole 128-token blocks (every question after the first hits the whole document);
  the CSV parses with Python's csv module, one row per item.
- kill -9 of the worker mid-batch: after a new worker starts, 12 items, each answered and stored once.
"""

import csv
import io
import json
import os
import signal
import subprocess
import sys

import httpx
import pytest
import redis

from pipeline.pdf import extract_pdf
from pipeline.prompts import question_prompt
from pipeline.records.db import make_engine, session_factory
from pipeline.records.models import BatchItem, Job, Result
from pipeline.tokens import count_tokens
from tests.api.helpers import job_finished, make_pdf, upload, wait_job_http
from tests.helpers.services import free_port, redis_db, start_worker, stop, uvicorn_api, wait_healthy
from tests.helpers.tenants import tenant_client
from tests.helpers.wait import wait_until

pytestmark = [pytest.mark.services, pytest.mark.slow]
QUESTIONS = ["Which vendor disputes the invoice?", "How much was invoiced?", "What is disputed?", "Who pays?"]
BLOCK = 128


@pytest.fixture(scope="module")
def stack(scratch_pg, redis_url, moto_endpoint, tiny_checkpoint, tmp_path_factory):
    """The inference server and the API; each test starts its own workers (`env` is theirs). The database is this
    module's own: its workers run beat, and the reconciler would re-send every other test's queued job too."""
    pg_url = scratch_pg()
    logs = tmp_path_factory.mktemp("batch-e2e")
    port = free_port()
    # small prefill steps, so an item lasts long enough for a kill to land mid-batch
    inference = subprocess.Popen([sys.executable, "-m", "inference.serve", "--checkpoint", str(tiny_checkpoint),
                                  "--port", str(port), "--max-num-batched-tokens", "128"],
                                 stdout=(logs / "inference.log").open("wb"), stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    broker = redis_db(redis_url, 5)  # this module's own queues
    redis.Redis.from_url(broker).flushdb()
    env = {"WHOLEDOC_DATABASE_URL": pg_url, "WHOLEDOC_BROKER_URL": broker,
           "WHOLEDOC_BLOB_URL": f"s3://testing:testing@wholedoc-batch?endpoint={moto_endpoint}&secure=0"
                                "&region=us-east-1",
           "WHOLEDOC_INFERENCE_URL": f"{base}/v1", "WHOLEDOC_LEASE_SECONDS": "2", "WHOLEDOC_RECONCILE_SECONDS": "1",
           "WHOLEDOC_RESEND_QUEUED_AFTER": "5",  # a message the killed worker had reserved is re-sent soon
           "WHOLEDOC_HOME": str(logs)}
    engine = make_engine(pg_url)
    try:
        wait_healthy(base, inference, f"inference server (log: {logs / 'inference.log'})", 180)
        with uvicorn_api(env, logs / "uvicorn.log") as url:
            yield {"url": url, "env": env, "logs": logs, "records": session_factory(engine)}
    finally:
        stop(inference)
        engine.dispose()


def _client(stack) -> httpx.Client:
    return tenant_client(stack["records"], stack["url"], "batch")


def _pdf(vendor: str) -> bytes:
    line = f"Vendor {vendor} invoiced 1200 for cables; vendor Brandt disputes 300 of it."
    return make_pdf("\n".join(f"{line} ({i})" for i in range(12)), pages=2)  # ~750 prompt tokens


def _documents(client, names) -> dict[str, bytes]:
    pdfs = {}
    for name in names:
        pdf = _pdf(name)
        doc = upload(client, pdf, name=f"{name}.pdf").json()
        job = wait_job_http(client, doc["ingest_job_id"], job_finished, timeout=120, poll=0.05)
        assert job["state"] == "done", job
        pdfs[doc["id"]] = pdf
    return pdfs


def _wait_batch(client, batch_id: str, until, timeout: float = 240) -> dict:
    seen = {}

    def reached():
        seen["b"] = client.get(f"/v1/batches/{batch_id}").json()
        return until(seen["b"])

    wait_until(reached, timeout, lambda: f"batch {batch_id} (last: {seen.get('b')})", 0.05)
    return seen["b"]


def test_three_documents_four_questions_share_each_prefill(stack, tmp_path):
    worker = start_worker(stack["env"], tmp_path / "w.log", name="batch",
                          extra=("-B", "-s", str(tmp_path / "beat-schedule")))
    try:
        client = _client(stack)
        pdfs = _documents(client, ["Aldous", "Brandt", "Corvin"])
        r = client.post("/v1/batches", json={"questions": QUESTIONS, "document_ids": list(pdfs), "max_tokens": 2})
        assert r.status_code == 202, r.text
        batch = _wait_batch(client, r.json()["id"], lambda b: b["state"] == "done")
    finally:
        stop(worker)
    assert batch["counts"] == {"queued": 0, "running": 0, "done": 12, "failed": 0, "cancelled": 0, "total": 12}
    items = client.get(f"/v1/batches/{batch['id']}/items", params={"limit": 200}).json()["data"]
    assert len(items) == 12 and all(i["answer"] is not None and i["usage"]["prompt_tokens"] for i in items)
    assert batch["prompt_tokens"] == sum(i["usage"]["prompt_tokens"] for i in items)
    assert batch["cached_prompt_tokens"] == sum(i["usage"]["cached_tokens"] for i in items)
    for doc_id, pdf in pdfs.items():
        block = count_tokens(question_prompt(extract_pdf(pdf), QUESTIONS[0]).document)
        cached = sum(i["usage"]["cached_tokens"] for i in items if i["document_id"] == doc_id)
        assert block >= 4 * BLOCK and cached >= 3 * (block // BLOCK * BLOCK), (doc_id, block, cached)
    rows = list(csv.DictReader(io.StringIO(client.get(f"/v1/batches/{batch['id']}/results.csv").text)))
    assert len(rows) == 12 and {r["state"] for r in rows} == {"done"}
    assert {(r["document_id"], r["question"]) for r in rows} == {(d, q) for d in pdfs for q in QUESTIONS}
    assert all(int(r["prompt_tokens"]) > 0 for r in rows)


def test_kill9_mid_batch_loses_only_the_items_in_flight(stack, tmp_path):
    client = _client(stack)
    a = start_worker(stack["env"], tmp_path / "a.log", name="a")
    b = None
    try:
        pdfs = _documents(client, ["Dorsey", "Ebner", "Falk"])
        r = client.post("/v1/batches", json={"questions": QUESTIONS, "document_ids": list(pdfs), "max_tokens": 8})
        batch_id = r.json()["id"]
        mid = _wait_batch(client, batch_id, lambda x: x["counts"]["done"] >= 1 or x["state"] == "done")
        in_flight = _stopped_mid_job(a, stack, batch_id)  # frozen: the jobs it holds can no longer finish
        a.send_signal(signal.SIGKILL)
        a.wait(10)
        assert mid["state"] != "done" and mid["counts"]["done"] < 12, mid
        b = start_worker(stack["env"], tmp_path / "b.log", name="b", extra=("-B", "-s", str(tmp_path / "beat")))
        batch = _wait_batch(client, batch_id, lambda x: x["state"] == "done")
    finally:
        stop(a)
        if b is not None:
            stop(b)
    assert batch["counts"]["done"] == 12 and batch["counts"]["total"] == 12, batch
    with stack["records"]() as s:
        items = s.query(BatchItem).filter_by(batch_id=batch_id).all()
        job_ids = [i.job_id for i in items]
        results = s.query(Result).filter(Result.job_id.in_(job_ids)).all()
        jobs = s.query(Job).filter(Job.id.in_(job_ids)).all()
    assert len(items) == 12 and len({(i.document_id, i.question_index) for i in items}) == 12
    assert len(set(job_ids)) == 12 and len(results) == 12  # one answer job and one stored result per item
    assert {r.job_id for r in results} == set(job_ids)
    # exactly the items in flight on the killed worker ran again (on b); every other one ran once
    assert {j.id for j in jobs if j.attempts >= 2} == in_flight, [(j.id, j.attempts) for j in jobs]


def _running_jobs(stack, batch_id: str) -> set[str]:
    with stack["records"]() as s:
        return {j.id for j in s.query(Job).join(BatchItem, BatchItem.job_id == Job.id).filter(
            BatchItem.batch_id == batch_id, Job.state == "running")}


def _stopped_mid_job(proc, stack, batch_id: str) -> set[str]:
    """SIGSTOP the (solo-pool) worker at a moment it holds one of the batch's jobs, and return those jobs' ids: the
    check runs while it is stopped, so no job can finish between seeing it running and the kill that follows."""
    def stopped_holding_one():
        proc.send_signal(signal.SIGSTOP)
        wait_until(lambda: _proc_state(proc.pid) == "T", 10, "the worker stopped", 0.01)
        running = _running_jobs(stack, batch_id)
        if not running:
            proc.send_signal(signal.SIGCONT)
        return running

    return wait_until(stopped_holding_one, 120, "an item's job running on worker a", 0.02)


def _proc_state(pid: int) -> str:
    """The process's state letter from /proc (T: stopped)."""
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0]


def test_cli_corpus_and_batch(stack, tmp_path):
    """`wholedoc corpus create/add/ls`, then `wholedoc batch QUESTIONS --corpus NAME -o results.csv` (and --dry-run)
    against the deployment: the CSV holds every item, stderr ends with the cached share."""
    client = _client(stack)
    folder = tmp_path / "reports"
    folder.mkdir()
    for name in ("Gale", "Hart"):
        (folder / f"{name}.pdf").write_bytes(_pdf(name))
    (folder / "notes.txt").write_text("not a PDF: skipped")
    questions = tmp_path / "questions.txt"
    questions.write_text("# two questions\nWho disputes?\n\nHow much?\n")
    cli_env = {k: v for k, v in os.environ.items() if not k.startswith("WHOLEDOC_")}
    cli_env |= {"WHOLEDOC_API_URL": stack["url"],
                "WHOLEDOC_API_KEY": client.headers["authorization"].removeprefix("Bearer ")}

    def wholedoc(*argv: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "api.cli", *argv], env=cli_env, capture_output=True, text=True,
                              timeout=240)

    worker = start_worker(stack["env"], tmp_path / "w.log", name="cli", extra=("-B", "-s", str(tmp_path / "beat")))
    try:
        assert wholedoc("corpus", "create", "reports").returncode == 0
        added = wholedoc("corpus", "add", "reports", str(folder))
        assert added.returncode == 0, added.stderr
        listed = wholedoc("corpus", "ls")
        assert "2 documents  reports" in listed.stdout, listed.stdout
        assert sorted(line.split()[-1] for line in wholedoc("corpus", "ls", "reports").stdout.splitlines()) == [
            "Gale.pdf", "Hart.pdf"]
        dry = wholedoc("batch", str(questions), "--corpus", "reports", "--dry-run")
        assert dry.returncode == 0, dry.stderr
        estimate = json.loads(dry.stdout)
        assert estimate["items"] == 4 and estimate["cache_source"] == "probe" and estimate["cached_tokens"] > 0
        assert client.get("/v1/batches").json()["data"] == []  # the dry run created nothing
        by_path = wholedoc("batch", str(questions), str(folder / "Gale.pdf"), "--dry-run")  # PATHs instead
        assert by_path.returncode == 0 and json.loads(by_path.stdout)["items"] == 2, by_path.stderr
        code = tmp_path / "app"
        (code / "src").mkdir(parents=True)
        (code / "src" / "main.py").write_text("def main():\n    return 42\n")
        assert wholedoc("corpus", "create", "code").returncode == 0
        packed = wholedoc("corpus", "add", "code", str(code), "--codebase")  # a folder as one codebase document
        assert packed.returncode == 0, packed.stderr
        assert " codebase " in wholedoc("corpus", "ls", "code").stdout
        assert wholedoc("corpus", "add", "code", str(folder / "notes.txt")).returncode == 2  # not a PDF: said so
        out = tmp_path / "results.csv"
        ran = wholedoc("batch", str(questions), "--corpus", "reports", "-o", str(out), "--max-tokens", "2")
    finally:
        stop(worker)
    assert ran.returncode == 0, ran.stderr
    rows = list(csv.DictReader(out.open(newline="")))
    assert len(rows) == 4 and {r["state"] for r in rows} == {"done"}
    assert {(r["document_name"], r["question"]) for r in rows} == {(f"{n}.pdf", q) for n in ("Gale", "Hart")
                                                                  for q in ("Who disputes?", "How much?")}
    assert "answered" in ran.stderr and "prompt tokens cached (" in ran.stderr.splitlines()[-1]
