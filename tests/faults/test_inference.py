"""The inference server (`python -m inference.serve` on the `tiny` checkpoint) killed mid-stream and restarted: the
job is retried on the new server and stores exactly one result, from one request (never two generations spliced);
with the server gone past the retry budget the job fails with a clear error. docs/reliability.md."""

import signal
import subprocess
import sys
import time

import pytest

from pipeline.records.models import Result
from tests.api.helpers import make_pdf, upload
from tests.faults.helpers import jobs_state, outcome, stack_env, tenant_client, wait_finished
from tests.helpers.services import free_port, start_worker, stop, uvicorn_api, wait_healthy
from tests.helpers.wait import wait_until

pytestmark = [pytest.mark.services, pytest.mark.slow]


class Server:
    """The inference server on a fixed port, so a restart comes back where the workers look for it."""

    def __init__(self, checkpoint, log):
        self.checkpoint, self.log, self.port, self.proc = checkpoint, log, free_port(), None
        self.base = f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "inference.serve", "--checkpoint", str(self.checkpoint),
                                      "--port", str(self.port), "--max-num-batched-tokens", "128"],
                                     stdout=self.log.open("ab"), stderr=subprocess.STDOUT)
        wait_healthy(self.base, self.proc, f"inference server (log: {self.log})", 180)

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)


@pytest.fixture(scope="module")
def stack(module_db, private_redis, records, tiny_checkpoint, tmp_path_factory):
    logs = tmp_path_factory.mktemp("faults-inference")
    server = Server(tiny_checkpoint, logs / "inference.log")
    server.start()
    env = stack_env(module_db, private_redis.url.rsplit("/", 1)[0] + "/3", f"file://{logs / 'blobs'}",
                    f"{server.base}/v1", logs)
    try:
        with uvicorn_api(env, logs / "uvicorn.log") as url:
            yield {"url": url, "env": env, "server": server, "records": records, "logs": logs}
    finally:
        stop(server.proc)


def _document(stack, client) -> str:
    doc = upload(client, make_pdf("The vendor invoiced 1200 for cables; Brandt disputes 300.", pages=2)).json()
    wait_finished(stack["records"], [doc["ingest_job_id"]], 60)
    return doc["id"]


def test_inference_server_killed_mid_stream_and_restarted_one_result(stack, tmp_path, fault_rows):
    records, server = stack["records"], stack["server"]
    worker = start_worker(stack["env"] | {"WHOLEDOC_RETRY_BACKOFF": "2"}, tmp_path / "w.log", name="inf1",
                          extra=("-B", "-s", str(tmp_path / "beat")))
    try:
        client = tenant_client(records, stack["url"])
        doc_id = _document(stack, client)
        r = client.post(f"/v1/documents/{doc_id}/summaries", json={"style": "detailed", "max_tokens": 300})
        assert r.status_code == 202, r.text
        job_id = r.json()["id"]
        wait_until(lambda: (jobs_state(records, [job_id])[job_id][0].tokens_generated or 0) > 0, 120,
                   "the summary streaming tokens", 0.02)
        server.kill()
        killed_at = time.monotonic()
        server.start()
        wait_finished(records, [job_id], 120)
    finally:
        stop(worker)
    row = outcome("inference server killed mid-stream, restarted", records, [job_id], time.monotonic() - killed_at)
    fault_rows.append(row)
    (job, n), = jobs_state(records, [job_id]).values()
    assert (job.state, n) == ("done", 1), (job.state, job.error, n)
    with records() as s:
        [result] = s.query(Result).filter_by(job_id=job_id).all()
    # the stored text is one request's: the retry's own id, and no more tokens than one generation may hold
    # job-<id>-<job attempt>[.<the client's retry>]: the broken request was retried whole (by the client, else by
    # the job), and the stored text is that one request's
    rid = result.usage["request_id"]
    assert rid.split(".")[0] == f"job-{job_id}-{job.attempts}", result.usage
    assert job.attempts >= 2 or result.usage["attempts"] >= 2, (job.attempts, result.usage)
    assert result.usage["completion_tokens"] <= job.params["max_tokens"]


def test_inference_server_gone_past_the_retry_budget_fails_clearly(stack, tmp_path, fault_rows):
    records, server = stack["records"], stack["server"]
    worker = start_worker(stack["env"] | {"WHOLEDOC_INFERENCE_MAX_RETRIES": "0"}, tmp_path / "w.log", name="inf2")
    try:
        client = tenant_client(records, stack["url"])
        doc_id = _document(stack, client)
        server.kill()
        t0 = time.monotonic()
        job_id = client.post(f"/v1/documents/{doc_id}/summaries", json={"style": "brief"}).json()["id"]
        wait_finished(records, [job_id], 60)
    finally:
        stop(worker)  # the server stays down: this is the module's last test
    clear = ("gave up after 3 attempts",)
    row = outcome("inference server gone past the retry budget", records, [job_id], time.monotonic() - t0, clear)
    fault_rows.append(row)
    (job, n), = jobs_state(records, [job_id]).values()
    assert (job.state, n) == ("failed", 0)
    assert server.base in job.error and "gave up after 3 attempts" in job.error, job.error
    assert client.get(f"/v1/jobs/{job_id}").json()["error"] == job.error
