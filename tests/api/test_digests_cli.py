"""`wholedoc digest schedule | run | ls` against a real API (WHOLEDOC_API_URL + WHOLEDOC_API_KEY). No worker runs
here: while `digest run` waits, the test does the workers' steps on the records (the steps themselves run on real
workers in tests/workers/test_digest_e2e.py); the command prints the digest and which document each `doc N` is."""

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

from pipeline.records import digest_runs, jobs
from pipeline.records.db import transaction
from pipeline.records.models import DigestRun, new_id
from tests.api.helpers import make_pdf, make_ready, upload
from tests.helpers.wait import wait_until

pytestmark = pytest.mark.services


def _cli(env, *args, **kw):
    return subprocess.run([sys.executable, "-m", "api.cli", "digest", *args], env=env, capture_output=True, text=True,
                          timeout=120, **kw)


def _work_the_run(records, tenant_id: str) -> str:
    """What the workers do for the tenant's next run: its summary, then its digest; returns the run's id."""
    found = {}

    def made():
        with records() as s:
            found["run"] = s.query(DigestRun).filter_by(tenant_id=tenant_id).one_or_none()
        return found["run"] is not None

    wait_until(made, 60, "the run")
    run_id = found["run"].id
    with transaction(records) as s:
        (summary,) = digest_runs.advance(s, only=[run_id]).to_send
    with transaction(records) as s:
        jobs.claim_job(s, summary.id, "w", 60)
        jobs.finish_job(s, summary.id, "w", text="a summary")
    with transaction(records) as s:
        (digest,) = digest_runs.advance(s, only=[run_id]).to_send
    with transaction(records) as s:
        jobs.claim_job(s, digest.id, "w", 60)
        result = jobs.finish_job(s, digest.id, "w", text="The week in one digest.")
        run = s.get(DigestRun, run_id)
        digest_runs.complete_run(s, run_id, result_id=result.id, mode="whole", skipped=[],
                                 documents=[{"doc": 1, "document_id": run.documents[0]["document_id"],
                                             "title": "alpha.pdf", "summary_result_id": None}])
    return run_id


def test_schedule_ls_and_run(make_client, records, api_url):
    client = make_client()
    env = {**os.environ, "WHOLEDOC_API_URL": api_url,
           "WHOLEDOC_API_KEY": client.headers["Authorization"].removeprefix("Bearer ")}
    name = f"reports-{new_id()}"
    corpus = client.post("/v1/corpora", json={"name": name}).json()
    doc = upload(client, make_pdf("alpha"), name="alpha.pdf").json()
    make_ready(records, doc["id"])
    client.post(f"/v1/corpora/{corpus['id']}/documents", json={"document_ids": [doc["id"]]})

    refused = _cli(env, "schedule", name, "--cron", "*/5 * * * *")
    assert refused.returncode == 1 and "15 min" in refused.stderr and "Traceback" not in refused.stderr
    made = _cli(env, "schedule", name, "--cron", "0 7 * * 1", "--tz", "Europe/Berlin", "--style", "executive")
    assert made.returncode == 0 and "next run" in made.stderr, made.stderr
    digest_id = made.stdout.strip()
    listed = _cli(env, "ls")
    assert listed.returncode == 0 and digest_id in listed.stdout and name in listed.stdout
    assert "0 7 * * 1 (Europe/Berlin) executive" in listed.stdout and "never run" in listed.stdout

    with ThreadPoolExecutor(1) as pool:
        worker = pool.submit(_work_the_run, records, client.tenant_id)
        ran = _cli(env, "run", name)
        worked = worker.result(timeout=120)  # re-raises what the worker's steps raised; waits for them to end
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.strip() == "The week in one digest."
    assert "1 new document since the last digest" in ran.stderr and f"doc 1: {doc['id']}  alpha.pdf" in ran.stderr
    (run,) = client.get(f"/v1/digests/{digest_id}/runs").json()["data"]
    assert run["id"] == worked  # the run the CLI printed is the one the worker steps finished
    result = client.get(f"/v1/results/{run['result_id']}").json()  # the result itself says which document is doc 1
    assert (result["kind"], result["coverage"]) == ("digest", {
        "mode": "digest", "run_id": run["id"], "prompt": "whole", "skipped": [],
        "documents": [{"doc": 1, "document_id": doc["id"], "title": "alpha.pdf", "summary_result_id": None}]})
