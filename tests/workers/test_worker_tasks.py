"""Real Celery worker processes on a private Redis: ingest, summarize (progress, usage), cancel, redelivery."""

import json

import pytest

from pipeline.prompts.builders import THINKING_TOKENS
from pipeline.records import jobs
from pipeline.records.db import transaction
from pipeline.records.models import Document
from tests.api.helpers import make_pdf
from tests.helpers.services import start_worker, stop
from tests.helpers.wait import wait_until
from tests.pipeline.faultserver import Reply
from tests.workers.helpers import new_document, results_of, send, wait_job
from workers.settings import WorkerSettings

pytestmark = [pytest.mark.services, pytest.mark.slow]


@pytest.fixture
def worker(wk_env, tmp_path):
    proc = start_worker(wk_env, tmp_path / "worker.log")
    yield proc
    stop(proc)


def _ready_document(records, blobs, wk_env, pages=3):
    tenant_id, doc_id, job_id = new_document(records, blobs, make_pdf("The quarterly report", pages=pages))
    send(wk_env, "ingest", job_id, tenant_id)
    job = wait_job(records, job_id, lambda j: j.state in ("done", "failed"), what="ingest finished")
    assert job.state == "done", job.error
    return tenant_id, doc_id


def _summary_job(records, tenant_id, doc_id, **params):
    with transaction(records) as s:
        return jobs.create_job(s, tenant_id, "summarize", document_id=doc_id,
                               params={"style": "brief", "thinking": False, "max_tokens": 512, **params}).id


def test_ingest_stores_the_extracted_document(worker, records, blobs, wk_env):
    tenant_id, doc_id = _ready_document(records, blobs, wk_env, pages=3)
    with records() as s:
        doc = s.get(Document, doc_id)
        assert (doc.status, doc.num_sections, doc.error) == ("ready", 3, None)
        assert doc.num_tokens > 10
        stored = json.loads(blobs.get_bytes(doc.text_blob_key))
    assert [s["anchor"] for s in stored["sections"]] == ["1", "2", "3"]
    assert "The quarterly report 2" in stored["text"]


def test_ingest_of_a_broken_pdf_fails_the_document_with_a_reason(worker, records, blobs, wk_env):
    tenant_id, doc_id, job_id = new_document(records, blobs, b"%PDF-1.7\n" + b"\x00garbage" * 100)
    send(wk_env, "ingest", job_id, tenant_id)
    job = wait_job(records, job_id, lambda j: j.state in ("done", "failed"), what="ingest finished")
    with records() as s:
        doc = s.get(Document, doc_id)
    assert job.state == "failed" and doc.status == "failed"
    assert doc.error == job.error and len(job.error) > 10 and "internal error" not in job.error


def test_summarize_records_progress_and_stores_one_result(worker, records, blobs, wk_env, llm):
    tenant_id, doc_id = _ready_document(records, blobs, wk_env)
    answer = ('The report says hello [p. 2: "The quarterly report 2"], '
              'and goodbye [p. 1: "goodbye"] [p. 9].')
    llm.default = Reply(content=(answer[:30], answer[30:]), progress=((400, 1000), (1000, 1000)), chunk_delay=0.6)
    job_id = _summary_job(records, tenant_id, doc_id)
    send(wk_env, "summarize", job_id, tenant_id)
    seen = wait_job(records, job_id, lambda j: j.prefill_tokens_total == 1000, what="prefill progress recorded")
    assert seen.stage in ("prefill", "generate", None) and seen.request_id == f"job-{job_id}-1"
    job = wait_job(records, job_id, lambda j: j.state in ("done", "failed"), what="summary finished")
    assert job.state == "done", job.error
    [result] = results_of(records, job_id)
    assert result.text == answer
    assert [(c["anchor"], c["status"]) for c in result.citations] == \
           [("2", "verified"), ("1", "unverified"), ("9", "invalid")]
    assert (result.usage["prompt_tokens"], result.usage["completion_tokens"], result.usage["cached_tokens"]) == \
           (100, 2, 64)
    posted = [r for r in llm.received if r.path == "/v1/chat/completions"]
    assert len(posted) == 1 and posted[0].body["max_tokens"] == 512
    assert posted[0].body["thinking"] == {"type": "disabled"}
    assert "The quarterly report 1" in posted[0].body["messages"][1]["content"]
    assert posted[0].body["cache_salt"] == WorkerSettings().cache_salt(tenant_id)  # its own
    send(wk_env, "summarize", job_id, tenant_id)  # a redelivered message: claims nothing, stores nothing
    send(wk_env, "summarize", job_id, tenant_id)
    llm.default = Reply(content=("a second answer",))
    _ready_document(records, blobs, wk_env, pages=1)  # the queue has drained past the redeliveries
    assert [r.id for r in results_of(records, job_id)] == [result.id]
    assert len([r for r in llm.received if r.path == "/v1/chat/completions"]) == 1


def test_thinking_summary_leaves_room_for_reasoning(worker, records, blobs, wk_env, llm):
    """Regression: with thinking on, max_tokens was the answer's cap alone, so reasoning could use it all up."""
    tenant_id, doc_id = _ready_document(records, blobs, wk_env, pages=2)
    llm.default = Reply(content=("A short summary.",))
    job_id = _summary_job(records, tenant_id, doc_id, thinking=True)
    send(wk_env, "summarize", job_id, tenant_id)
    job = wait_job(records, job_id, lambda j: j.state in ("done", "failed"), what="summary finished")
    assert job.state == "done", job.error
    [posted] = [r for r in llm.received if r.path == "/v1/chat/completions"]
    # the reasoning is capped at its room (the server closes the thinking block there), so the answer keeps 512
    assert posted.body["thinking"] == {"type": "enabled", "budget_tokens": THINKING_TOKENS}
    assert posted.body["max_tokens"] == 512 + THINKING_TOKENS


def test_cancel_during_prefill_aborts_the_inference_request(worker, records, blobs, wk_env, llm):
    tenant_id, doc_id = _ready_document(records, blobs, wk_env)
    llm.default = Reply(progress=tuple((i * 10, 1000) for i in range(100)), chunk_delay=0.1)
    job_id = _summary_job(records, tenant_id, doc_id)
    send(wk_env, "summarize", job_id, tenant_id)
    wait_job(records, job_id, lambda j: (j.prefill_tokens_done or 0) > 0, what="prefill under way")
    with transaction(records) as s:
        jobs.cancel_job(s, tenant_id, job_id)
    rid = f"job-{job_id}-1"
    wait_until(lambda: f"/v1/requests/{rid}" in llm.paths("DELETE"), 15,
               lambda: f"DELETE /v1/requests/{rid} (requests seen: {llm.paths()})")
    job = wait_job(records, job_id, lambda j: j.state == "cancelled")
    assert job.prefill_tokens_done < 1000 and results_of(records, job_id) == []


@pytest.fixture
def retry_worker(wk_env, tmp_path):
    proc = start_worker({**wk_env, "WHOLEDOC_INFERENCE_MAX_RETRIES": "0", "WHOLEDOC_RETRY_BACKOFF": "0.2"},
                        tmp_path / "worker.log")
    yield proc
    stop(proc)


def test_transient_error_requeues_with_backoff_then_succeeds(retry_worker, records, blobs, wk_env, llm):
    tenant_id, doc_id = _ready_document(records, blobs, wk_env, pages=1)
    llm.script.append(Reply(status=503, error="overloaded"))
    job_id = _summary_job(records, tenant_id, doc_id)
    send(wk_env, "summarize", job_id, tenant_id)
    job = wait_job(records, job_id, lambda j: j.state in ("done", "failed"), what="finished after a retry")
    assert (job.state, job.attempts, job.error) == ("done", 2, None)
    assert len(results_of(records, job_id)) == 1
    posts = [r.at for r in llm.received if r.path == "/v1/chat/completions"]
    assert len(posts) == 2 and posts[1] - posts[0] >= 0.15  # backed off (0.2 s ± 20 %) before the retry


def test_non_transient_error_fails_at_once_with_the_reason(retry_worker, records, blobs, wk_env, llm):
    tenant_id, doc_id = _ready_document(records, blobs, wk_env, pages=1)
    llm.script.append(Reply(status=400, error="unknown model 'nope'"))
    job_id = _summary_job(records, tenant_id, doc_id)
    send(wk_env, "summarize", job_id, tenant_id)
    job = wait_job(records, job_id, lambda j: j.state in ("done", "failed"), what="failed")
    assert (job.state, job.attempts) == ("failed", 1)
    assert "unknown model 'nope'" in job.error and results_of(records, job_id) == []


def test_deepseek_endpoint_gets_one_warm_up_per_document_before_concurrent_questions(records, blobs, wk_env, llm,
                                                                                      tmp_path):
    """DeepSeek's API caches a prefix only once a request that carries it completes: two workers answering three
    questions about one new document send one warm-up (the prefix alone, 1 token) first, and every question arrives
    after it has completed; later questions about the document send none. No cache_salt goes to that API."""
    env = {**wk_env, "WHOLEDOC_INFERENCE_FLAVOR": "deepseek"}
    procs = [start_worker(env, tmp_path / f"w{i}.log", name=f"ds{i}") for i in range(2)]
    try:
        tenant_id, doc_id = _ready_document(records, blobs, env, pages=2)
        llm.default = Reply(content=("Answer.",), hang=0.5)
        seen = len(llm.received)

        def ask(question):
            with transaction(records) as s:
                job = jobs.create_job(s, tenant_id, "answer", document_id=doc_id,
                                      params={"question": question, "thinking": False, "max_tokens": 64})
            send(env, "answer", job.id, tenant_id)
            return job.id

        ids = [ask(f"Question {i}?") for i in range(3)]
        for job_id in ids:
            assert wait_job(records, job_id, lambda j: j.state in ("done", "failed"), 90).state == "done"
        chats = [r for r in llm.received[seen:] if r.path == "/v1/chat/completions"]
        warm = [r for r in chats if r.body["max_tokens"] == 1]
        questions = [r for r in chats if r.body["max_tokens"] != 1]
        assert len(warm) == 1 and len(questions) == 3
        assert min(q.at for q in questions) >= warm[0].at + 0.4  # each waited for the warm-up to complete
        assert all("cache_salt" not in r.body for r in chats)
        assert warm[0].body["messages"][-1]["content"].rstrip().endswith("</document>")  # the prefix alone
        later = len(llm.received)
        assert wait_job(records, ask("Once more?"), lambda j: j.state in ("done", "failed"), 60).state == "done"
        assert len([r for r in llm.received[later:] if r.path == "/v1/chat/completions"]) == 1
    finally:
        for proc in procs:
            stop(proc)
