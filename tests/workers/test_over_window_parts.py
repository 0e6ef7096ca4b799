"""A summary in parts on a real worker process against the fault server (docs/over-window.md): a part that fails
is retried as a part — the job goes back to the queue and its next attempt resumes at that part, never sending the
parts done before again — and the window comes from WHOLEDOC_MAX_MODEL_LEN when the endpoint reports none."""

import pytest

from pipeline.records import jobs
from pipeline.records.db import transaction
from pipeline.records.models import JobPart
from tests.helpers.long_pdf import long_pdf
from tests.helpers.services import start_worker, stop
from tests.pipeline.faultserver import FaultServer, Reply
from tests.workers.helpers import new_document, results_of, send, wait_job

pytestmark = [pytest.mark.services, pytest.mark.slow]


@pytest.fixture
def llm():
    server = FaultServer(wholedoc=False)  # /v1/models without max_model_len: the configured window applies
    yield server
    server.close()


def test_a_failed_part_is_retried_as_a_part(wk_env, records, blobs, tmp_path, llm):
    env = wk_env | {"WHOLEDOC_MAX_MODEL_LEN": "4096", "WHOLEDOC_INFERENCE_MAX_RETRIES": "0",
                    "WHOLEDOC_RETRY_BACKOFF": "0.1"}
    worker = start_worker(env, tmp_path / "worker.log")
    try:
        tenant_id, doc_id, ingest_id = new_document(records, blobs, long_pdf(40))
        send(env, "ingest", ingest_id, tenant_id)
        assert wait_job(records, ingest_id, lambda j: j.state in ("done", "failed")).state == "done"
        llm.default = Reply(content=("Notes [p. 1]",))
        llm.script.extend([Reply(content=("Part one [p. 2]",)), Reply(status=503, error="engine restarting")])
        with transaction(records) as s:
            job_id = jobs.create_job(s, tenant_id, "summarize", document_id=doc_id,
                                     params={"style": "brief", "thinking": False, "max_tokens": 16,
                                             "over_window": "sections"}).id
        send(env, "summarize", job_id, tenant_id)
        job = wait_job(records, job_id, lambda j: j.state in ("done", "failed", "cancelled"), timeout=90)
    finally:
        stop(worker)
    assert job.state == "done", job.error
    assert job.attempts == 2
    sent = [r.headers.get("X-Request-Id") for r in llm.received if r.path == "/v1/chat/completions"]
    with records() as s:
        parts = s.query(JobPart).filter_by(job_id=job_id).order_by(JobPart.number).all()
        n = len(parts)
        assert n >= 3 and all(p.state == "done" for p in parts)
        assert parts[0].text == "Part one [p. 2]"  # kept from the first attempt
    first = [f"job-{job_id}-1-part1", f"job-{job_id}-1-part2"]
    again = [f"job-{job_id}-2-part{k}" for k in range(2, n + 1)] + [f"job-{job_id}-2-combine"]
    assert sent == first + again  # part 1 was not sent again
    [result] = results_of(records, job_id)
    assert [p["usage"]["request_id"] for p in result.coverage["parts"]] == [first[0]] + again[:-1]
    assert result.usage["prompt_tokens"] == 100 * (n + 1)  # the fault server's 100 per request, added up
