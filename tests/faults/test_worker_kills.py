"""20 `kill -9`s of Celery workers at seeded random moments while a batch of 30 questions runs (docs/batches.md):
every item is answered and stored exactly once, nothing is lost. A separate `celery beat` (the reconciler, the batch
sweep) keeps running; killed workers are replaced at once. docs/reliability.md, "Faults on real processes"."""

import os
import random
import signal
import subprocess
import time

import pytest

from pipeline.records.models import BatchItem
from tests.api.helpers import make_pdf, upload
from tests.faults.helpers import outcome, stack_env, tenant_client, wait_finished
from tests.helpers.services import BIN, ROOT, start_worker, stop, uvicorn_api
from tests.helpers.wait import wait_until
from tests.pipeline.faultserver import FaultServer, Reply

pytestmark = [pytest.mark.services, pytest.mark.slow]
SEED, KILLS, DOCS, QUESTIONS = 18, 20, 5, 6


def _spawn(env: dict, log, name: str) -> subprocess.Popen:
    """A worker process, not waited on (a replacement boots while the others work)."""
    return subprocess.Popen([str(BIN / "celery"), "-A", "workers.app", "worker", "--pool=solo", "--without-gossip",
                             "--without-mingle", "--without-heartbeat", "-Q", "ingest,llm,maintenance", "-n",
                             f"{name}@%h", "--loglevel=INFO"], cwd=ROOT, env={**os.environ, **env},
                            stdout=log.open("ab"), stderr=subprocess.STDOUT)


def test_twenty_seeded_kill9s_over_a_batch_lose_and_double_nothing(module_db, private_redis, records, tmp_path,
                                                                   fault_rows):
    llm = FaultServer()
    llm.default = Reply(content=tuple(f"k{i} " for i in range(10)), chunk_delay=0.08)  # ~1 s an item
    env = stack_env(module_db, private_redis.url.rsplit("/", 1)[0] + "/4", f"file://{tmp_path / 'blobs'}",
                    llm.base_url, tmp_path, WHOLEDOC_MODEL=llm.model, WHOLEDOC_BATCH_DOCS_IN_FLIGHT="3")
    beat = subprocess.Popen([str(BIN / "celery"), "-A", "workers.app", "beat", "-s", str(tmp_path / "beat"),
                             "--loglevel=INFO"], cwd=ROOT, env={**os.environ, **env},
                            stdout=(tmp_path / "beat.log").open("ab"), stderr=subprocess.STDOUT)
    workers = [start_worker(env, tmp_path / f"w{i}.log", name=f"w{i}") for i in range(2)]
    rng = random.Random(SEED)
    try:
        with uvicorn_api(env, tmp_path / "uvicorn.log") as url:
            client = tenant_client(records, url)
            docs = [upload(client, make_pdf(f"kill {i}", pages=2), f"k{i}.pdf").json() for i in range(DOCS)]
            wait_finished(records, [d["ingest_job_id"] for d in docs], 60)
            r = client.post("/v1/batches", json={"questions": [f"question {q}?" for q in range(QUESTIONS)],
                                                 "document_ids": [d["id"] for d in docs], "max_tokens": 16})
            assert r.status_code == 202, r.text
            batch_id = r.json()["id"]
            for k in range(KILLS):  # seeded moments, a seeded victim; its replacement starts at once
                time.sleep(rng.uniform(0.2, 1.0))
                i = rng.randrange(len(workers))
                workers[i].send_signal(signal.SIGKILL)
                workers[i].wait(10)
                workers[i] = _spawn(env, tmp_path / f"r{k}.log", f"r{k}")
            killed_at = time.monotonic()

            def finished():
                b = client.get(f"/v1/batches/{batch_id}").json()
                return b["state"] in ("done", "failed", "cancelled") and b

            batch = wait_until(finished, 180, "the batch finished", 0.2)
            with records() as s:
                job_ids = [i.job_id for i in s.query(BatchItem).filter_by(batch_id=batch_id)]
            wait_finished(records, job_ids, 30)
    finally:
        for w in workers:
            stop(w, signal.SIGKILL)
        stop(beat)
        llm.close()
    total = DOCS * QUESTIONS
    row = outcome(f"{KILLS} seeded kill -9s of workers over a batch of {total} questions", records, job_ids,
                  time.monotonic() - killed_at, clear=("worker lost",))
    fault_rows.append(row)
    assert len(job_ids) == total and None not in job_ids and len(set(job_ids)) == total
    assert row.lost == 0 and row.duplicated == 0, row
    assert row.done + row.failed_clearly == total, row  # a job killed on each of its 3 attempts fails, saying so
    assert batch["counts"]["done"] == row.done, batch
