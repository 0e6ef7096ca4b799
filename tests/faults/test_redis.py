"""Redis restarted (its data kept), and Redis killed and started empty, while 20 question jobs are queued or running:
every job ends `done` with exactly one result; the messages Redis lost are re-sent by the reconciler from
PostgreSQL; routes that enqueue answer "accepted" during the outage, and the rate limiter lets requests through.
docs/reliability.md, "Faults on real processes"."""

import time

import pytest

from tests.api.helpers import make_pdf, upload
from tests.faults.helpers import jobs_state, outcome, stack_env, tenant_client, wait_finished
from tests.helpers.services import start_worker, stop, uvicorn_api
from tests.helpers.wait import wait_until
from tests.pipeline.faultserver import FaultServer, Reply

pytestmark = [pytest.mark.services, pytest.mark.slow]
N = 20


@pytest.fixture(scope="module")
def stack(module_db, private_redis, records, tmp_path_factory):
    logs = tmp_path_factory.mktemp("faults-redis")
    llm = FaultServer()
    llm.default = Reply(content=tuple(f"r{i} " for i in range(8)), chunk_delay=0.05)
    broker = private_redis.url.rsplit("/", 1)[0] + "/2"
    env = stack_env(module_db, broker, f"file://{logs / 'blobs'}", llm.base_url, logs, WHOLEDOC_MODEL=llm.model,
                    WHOLEDOC_RATE_PER_MIN="600", WHOLEDOC_RATE_BURST="100")
    worker = start_worker(env, logs / "worker.log", name="f2", extra=("-B", "-s", str(logs / "beat-schedule")))
    try:
        with uvicorn_api(env, logs / "uvicorn.log") as url:
            yield {"url": url, "llm": llm, "records": records, "logs": logs}
    finally:
        stop(worker)
        llm.close()


def _twenty_questions(stack, word: str):
    records = stack["records"]
    client = tenant_client(records, stack["url"])
    docs = [upload(client, make_pdf(f"{word} {i}", pages=2), f"{word}{i}.pdf").json() for i in range(2)]
    wait_finished(records, [d["ingest_job_id"] for d in docs], 60)
    job_ids = []
    for i in range(N):
        r = client.post(f"/v1/documents/{docs[i % 2]['id']}/questions", json={"question": f"{word} question {i}?"})
        assert r.status_code == 202, r.text
        job_ids.append(r.json()["id"])
    wait_until(lambda: sum(j.state == "done" for j, _ in jobs_state(records, job_ids).values()) >= 2, 60,
               "two questions answered")
    return client, docs, job_ids


def _during_outage(client, doc_id: str) -> str:
    """Requests while Redis is gone: reads answer 200 (the rate limiter fails open), a new job is accepted (202)
    and left queued for the reconciler to send. Returns the new job's id."""
    for _ in range(3):
        r = client.get("/v1/documents")
        assert r.status_code == 200, r.text
    r = client.post(f"/v1/documents/{doc_id}/questions", json={"question": "asked while Redis was down?"})
    assert r.status_code == 202, r.text
    return r.json()["id"]


def test_redis_restarted_keeps_every_job(stack, private_redis, fault_rows):
    records = stack["records"]
    client, docs, job_ids = _twenty_questions(stack, "restart")
    private_redis.restart()
    back_at = time.monotonic()
    wait_finished(records, job_ids, 120)
    row = outcome(f"Redis restarted ({N} questions)", records, job_ids, time.monotonic() - back_at)
    fault_rows.append(row)
    assert (row.done, row.lost, row.duplicated) == (N, 0, 0), row


def test_redis_killed_and_started_empty_the_reconciler_resends(stack, private_redis, fault_rows):
    records, log = stack["records"], stack["logs"] / "worker.log"
    client, docs, job_ids = _twenty_questions(stack, "empty")
    seen = len(log.read_text(errors="replace"))
    private_redis.kill()
    try:
        job_ids.append(_during_outage(client, docs[0]["id"]))
    finally:
        private_redis.start()  # empty: every queued message is gone
    back_at = time.monotonic()
    wait_finished(records, job_ids, 120)
    row = outcome(f"Redis killed, started empty ({N} questions + 1 during the outage)", records, job_ids,
                  time.monotonic() - back_at)
    fault_rows.append(row)
    assert (row.done, row.lost, row.duplicated) == (N + 1, 0, 0), row
    resends = [line for line in log.read_text(errors="replace")[seen:].splitlines() if "reconcile: " in line]
    assert any("'resent': 0" not in line for line in resends), resends  # the lost messages were sent again
