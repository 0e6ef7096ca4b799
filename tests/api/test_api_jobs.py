"""Jobs: result_id once done, cancel, the SSE stream; results with citations and usage; health and metrics."""

import json
import threading

import pytest

from pipeline.records import jobs
from pipeline.records.db import transaction
from tests.api.helpers import finish, make_pdf, make_ready, upload

pytestmark = pytest.mark.services


def _summary_job(client, records):
    doc = upload(client, make_pdf()).json()
    make_ready(records, doc["id"])
    return client.post(f"/v1/documents/{doc['id']}/summaries", json={"style": "brief"}).json()


def test_done_job_carries_its_result(make_client, records):
    client = make_client()
    job = _summary_job(client, records)
    assert client.get(f"/v1/jobs/{job['id']}").json()["result_id"] is None
    result_id = finish(records, job["id"], "the summary [p. 1]")
    got = client.get(f"/v1/jobs/{job['id']}").json()
    assert (got["state"], got["result_id"], got["progress"]) == ("done", result_id, 1.0)
    result = client.get(f"/v1/results/{result_id}").json()
    assert result["text"] == "the summary [p. 1]" and result["job_id"] == job["id"]
    assert result["citations"] == [{"anchor": "1", "status": "verified"}]
    assert result["usage"] == {"prompt_tokens": 100, "completion_tokens": 5, "cached_tokens": 0,  # typed: all fields
                               "reasoning_tokens": None, "request_id": None, "attempts": None, "finish_reason": None}


def test_cancel_then_cancel_again_then_finished_is_conflict(make_client, records):
    client = make_client()
    job = _summary_job(client, records)
    r = client.post(f"/v1/jobs/{job['id']}/cancel")
    assert r.status_code == 200 and r.json()["state"] == "cancelled"
    assert client.post(f"/v1/jobs/{job['id']}/cancel").json()["state"] == "cancelled"
    done = _summary_job(client, records)
    finish(records, done["id"])
    r = client.post(f"/v1/jobs/{done['id']}/cancel")
    assert r.status_code == 409 and r.json()["error"] == "conflict"


def test_list_jobs_filters_by_state(make_client, records):
    client = make_client()
    job = _summary_job(client, records)
    client.post(f"/v1/jobs/{job['id']}/cancel")
    states = {j["id"]: j["state"] for j in client.get("/v1/jobs").json()["data"]}
    assert states[job["id"]] == "cancelled" and list(states.values()).count("queued") == 1  # the ingest job
    assert [j["id"] for j in client.get("/v1/jobs?state=cancelled").json()["data"]] == [job["id"]]


def _events(client, job_id, on_event=None):
    out = []
    with client.stream("GET", f"/v1/jobs/{job_id}/events") as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        event = None
        for line in r.iter_lines():
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                out.append((event, json.loads(line[6:])))
                if on_event is not None:
                    on_event(event)
                if event == "end":
                    break
    return out


def test_sse_stream_follows_progress_until_the_end(make_client, records):
    client = make_client()
    job = _summary_job(client, records)
    with transaction(records) as s:
        jobs.claim_job(s, job["id"], "w", 60)
        jobs.record_progress(s, job["id"], "w", stage="prefill", prefill_tokens_done=30, prefill_tokens_total=90)
    result_id = None
    streaming = threading.Event()

    def finish_once_streaming():
        nonlocal result_id
        streaming.wait(30)  # finish anyway after that: the asserts below then name what the stream missed
        with transaction(records) as s:
            result_id = jobs.finish_job(s, job["id"], "w", text="t").id

    t = threading.Thread(target=finish_once_streaming)
    t.start()
    events = _events(client, job["id"], on_event=lambda _: streaming.set())  # finish once the stream is following
    t.join()
    kinds = [e for e, _ in events]
    assert kinds[0] == "progress" and kinds[-1] == "end"
    first, last_progress = events[0][1], events[-2][1]
    assert (first["state"], first["stage"], first["prefill_tokens_done"], first["prefill_tokens_total"]) == \
           ("running", "prefill", 30, 90)
    assert (last_progress["state"], last_progress["result_id"]) == ("done", result_id)
    assert events[-1][1] == {"id": job["id"], "state": "done"}


def test_health_and_metrics(api_url, make_client):
    import httpx

    assert httpx.get(f"{api_url}/health").json() == {"status": "ok", "database": "ok"}
    make_client().get("/v1/documents")
    text = httpx.get(f"{api_url}/metrics").text
    assert 'wholedoc_http_requests_total{method="GET",route="/v1/documents",status="200"}' in text
    assert "wholedoc_jobs{" in text
