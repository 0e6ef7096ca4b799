"""The API conventions (docs/api-conventions.md) on a real API process (uvicorn, PostgreSQL, Redis): idempotency keys,
duplicate uploads, cursor pages, authentication before any body is read, body limits, the headers of keyed responses,
the events stream's keep-alive; and the guards that make every future route follow them: each POST route replays its
Idempotency-Key, each list route pages with a cursor (both read from the app's own routes, as the tenancy test is)."""

import json
import os
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import httpx
import pytest
from fastapi.sse import EventSourceResponse

from api.schemas import Page
from pipeline.records.db import transaction
from pipeline.records.models import new_id
from pipeline.records.tenants import create_api_key, create_tenant
from tests.api.helpers import (
    MAX_JSON,
    PUBLIC_HOOK,
    app_routes,
    digest_and_webhook_ids,
    finish,
    make_pdf,
    make_ready,
    upload,
)
from tests.helpers.services import ROOT, free_port, stop, wait_healthy

pytestmark = pytest.mark.services
ROUTES = app_routes()


def _raw_pdf() -> dict:
    return {"content": make_pdf(f"unique {new_id()}"), "headers": {"Content-Type": "application/octet-stream"}}


# A valid request for every POST route (given the ids of a ready document and a queued job). A new POST route must
# add one: the guard below fails for a route missing here.
POST_REQUESTS = {
    "/v1/documents": lambda: _raw_pdf(),
    "/v1/documents/{document_id}/summaries": lambda: {"json": {"style": "brief"}},
    "/v1/documents/{document_id}/questions": lambda: {"json": {"question": "why?"}},
    "/v1/jobs/{job_id}/cancel": lambda: {},
    "/v1/corpora": lambda: {"json": {"name": f"corpus {new_id()}"}},
    "/v1/corpora/{corpus_id}/documents": lambda: {"json": {"document_ids": [OBJECTS["document_id"]]}},
    "/v1/batches": lambda: {"json": {"questions": ["why?"], "document_ids": [OBJECTS["document_id"]]}},
    "/v1/batches/{batch_id}/cancel": lambda: {},
    "/v1/corpora/{corpus_id}/questions": lambda: {"json": {"question": "why?"}},
    "/v1/corpora/{corpus_id}/digests": lambda: {"json": {"cron": "0 7 * * 1"}},
    "/v1/digests/{digest_id}/run": lambda: {},
    "/v1/webhooks": lambda: {"json": {"url": PUBLIC_HOOK, "events": ["job.done"]}},
    "/v1/session": lambda: {"json": {}},  # signs in with the request's own Bearer key (api.web.session)
}

OBJECTS: dict = {}  # the ids of the objects() made last, for the requests above that name them in their body


@pytest.fixture
def objects(make_client, records):
    """make() → (client of a new tenant, ids: a ready document and a queued summary job on it)."""
    def make():
        client = make_client()
        doc = upload(client, make_pdf(f"doc {new_id()}")).json()
        make_ready(records, doc["id"])
        job = client.post(f"/v1/documents/{doc['id']}/summaries", json={}).json()
        corpus = client.post("/v1/corpora", json={"name": f"c {new_id()}"}).json()
        client.post(f"/v1/corpora/{corpus['id']}/documents", json={"document_ids": [doc["id"]]})
        batch = client.post("/v1/batches", json={"questions": ["why?", "how?"], "document_ids": [doc["id"]]}).json()
        OBJECTS.update(document_id=doc["id"], job_id=job["id"], corpus_id=corpus["id"], batch_id=batch["id"])
        OBJECTS.update(digest_and_webhook_ids(client, corpus["id"]))
        return client, dict(OBJECTS)
    return make


def _key(value: str | None = None) -> dict:
    return {"Idempotency-Key": value or f"key-{new_id()}"}


def test_every_post_route_replays_its_idempotency_key(objects):
    """Same key and request: the first response again (same status, body and Location), created once; the same key
    on another request: 409. A POST route without an entry in POST_REQUESTS fails here."""
    posts = [path for method, path, _ in ROUTES if method == "POST"]
    assert sorted(posts) == sorted(POST_REQUESTS), "every POST route needs a request in POST_REQUESTS"
    for i, path in enumerate(posts):
        client, ids = objects()
        url, request, key = path.format(**ids), POST_REQUESTS[path](), _key()
        headers = key | request.pop("headers", {})
        first = client.post(url, headers=headers, **request)
        assert 200 <= first.status_code < 300 and "idempotent-replayed" not in first.headers, (path, first.text)
        again = client.post(url, headers=headers, **request)
        assert (again.status_code, again.json()) == (first.status_code, first.json()), path
        assert again.headers["idempotent-replayed"] == "true", path
        assert again.headers.get("location") == first.headers.get("location"), path
        other_path = posts[(i + 1) % len(posts)]
        other = POST_REQUESTS[other_path]()
        r = client.post(other_path.format(**ids), headers=key | other.pop("headers", {}), **other)
        assert (r.status_code, r.json()["error"]) == (409, "idempotency_key_reused"), (path, r.text)
        assert key["Idempotency-Key"] in r.json()["detail"] and path.split("{")[0] in r.json()["detail"]


def test_a_replay_creates_nothing_and_a_refused_request_stores_nothing(make_client, records):
    client = make_client()
    doc = upload(client, make_pdf("idempotent")).json()
    key = _key()
    refused = client.post(f"/v1/documents/{doc['id']}/summaries", json={}, headers=key)
    assert refused.status_code == 409 and refused.json()["error"] == "conflict"  # not ready yet: nothing stored
    make_ready(records, doc["id"])
    first = client.post(f"/v1/documents/{doc['id']}/summaries", json={}, headers=key)
    assert first.status_code == 202 and first.headers["location"] == f"/v1/jobs/{first.json()['id']}"
    finish(records, first.json()["id"])  # the job moves on; the replay still answers what the POST answered
    # the same body spelled differently (defaults written out, other key order) is the same request
    again = client.post(f"/v1/documents/{doc['id']}/summaries", headers=key,
                        json={"thinking": False, "max_tokens": None, "style": "brief"})
    assert again.json() == first.json() and again.json()["state"] == "queued"
    jobs = client.get(f"/v1/jobs?document_id={doc['id']}").json()["data"]
    assert sorted(j["kind"] for j in jobs) == ["ingest", "summarize"]
    bad = client.post(f"/v1/documents/{doc['id']}/summaries", json={}, headers={"Idempotency-Key": "has space"})
    assert bad.status_code == 422 and "Idempotency-Key" in bad.json()["detail"]


def test_requests_racing_with_one_key_create_one_job(objects):
    client, ids = objects()
    key, url = _key(), f"/v1/documents/{ids['document_id']}/questions"
    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(lambda _: client.post(url, json={"question": "once?"}, headers=key), range(6)))
    assert {r.status_code for r in answers} == {202}, [r.text for r in answers]
    assert len({r.json()["id"] for r in answers}) == 1
    listed = client.get(f"/v1/jobs?document_id={ids['document_id']}&state=queued").json()["data"]
    assert sum(j["kind"] == "answer" for j in listed) == 1


def test_the_same_bytes_uploaded_again_return_the_existing_document(make_client, records):
    a = make_client()
    pdf = make_pdf(f"twice {new_id()}")
    first = upload(a, pdf, "first.pdf")
    assert first.status_code == 201 and first.headers["location"] == f"/v1/documents/{first.json()['id']}"
    again = upload(a, pdf, "second-name.pdf")
    assert again.status_code == 200 and again.json() == first.json()  # its first name; no second extraction
    make_ready(records, first.json()["id"])
    now = upload(a, pdf)
    assert (now.status_code, now.json()["status"], now.json()["ingest_job_id"]) == (200, "ready",
                                                                                     first.json()["ingest_job_id"])
    forced = a.post("/v1/documents?force=true", content=pdf, headers={"Content-Type": "application/octet-stream"})
    assert forced.status_code == 201 and forced.json()["id"] != first.json()["id"]
    assert upload(a, pdf).json()["id"] == forced.json()["id"]  # the newest document with these bytes
    assert len(a.get("/v1/documents").json()["data"]) == 2
    assert upload(make_client(), pdf).status_code == 201  # per tenant


def _list_routes():
    """GET routes of a collection (the path does not end in an id) that answer a page (not an event stream, an
    image or the web session)."""
    return [(p, r) for m, p, r in ROUTES if m == "GET" and not p.endswith("}")
            and r.response_class is not EventSourceResponse
            and isinstance(r.response_model, type) and issubclass(r.response_model, Page)]


def test_every_list_route_pages_with_a_cursor(objects, api_url, records):
    """limit / after in, data / has_more / last_id out, no offset; walking with limit=1 visits each item once."""
    spec = httpx.get(f"{api_url}/openapi.json").json()
    lists = _list_routes()
    assert {p for p, _ in lists} >= {"/v1/documents", "/v1/jobs", "/v1/results"}
    client, ids = objects()
    second_doc = upload(client, make_pdf(f"second {new_id()}")).json()
    client.post(f"/v1/corpora/{ids['corpus_id']}/documents", json={"document_ids": [second_doc["id"]]})
    client.post("/v1/corpora", json={"name": f"second {new_id()}"})  # two corpora, two batches
    client.post("/v1/batches", json={"questions": ["again?"], "document_ids": [ids["document_id"]]})
    digest_and_webhook_ids(client, ids["corpus_id"])  # a second digest schedule and webhook (each job.done below
    client.post(f"/v1/digests/{ids['digest_id']}/run")  # is a delivery to both), and a second run of the first
    finish(records, ids["job_id"])  # two results
    second = client.post(f"/v1/documents/{ids['document_id']}/summaries", json={"style": "detailed"}).json()
    finish(records, second["id"])
    for path, _ in lists:
        op = spec["paths"][path]["get"]
        names = {p["name"] for p in op.get("parameters", [])}
        assert {"limit", "after"} <= names and "offset" not in names, path
        schema = spec["components"]["schemas"][op["responses"]["200"]["content"]["application/json"]["schema"]
                                                ["$ref"].rsplit("/", 1)[1]]
        assert {"data", "has_more", "last_id"} <= set(schema["required"]), path
        url = path.format(**ids)  # a nested list (a corpus's documents, a batch's items) of these objects
        everything = [x["id"] for x in client.get(url, params={"limit": 200}).json()["data"]]
        assert len(everything) >= 2, path
        walked, after = [], None
        while True:
            page = client.get(url, params={"limit": 1} | ({"after": after} if after else {})).json()
            walked += [x["id"] for x in page["data"]]
            assert page["last_id"] == page["data"][-1]["id"]
            if not page["has_more"]:
                break
            after = page["last_id"]
        assert walked == everything, path


def test_pages_do_not_shift_when_documents_arrive_between_calls(make_client):
    client = make_client()
    old = [upload(client, make_pdf(f"old {i} {new_id()}")).json()["id"] for i in range(5)]
    page = client.get("/v1/documents?limit=2").json()
    seen = [d["id"] for d in page["data"]]
    while page["has_more"]:
        upload(client, make_pdf(f"new {new_id()}"))  # a newer document between every two pages
        page = client.get(f"/v1/documents?limit=2&after={page['last_id']}").json()
        seen += [d["id"] for d in page["data"]]
    assert seen == old[::-1]  # newest first, each once: nothing shifted
    r = client.get("/v1/documents?offset=2")
    assert r.status_code == 422 and "`after`" in r.json()["detail"] and "offset" in r.json()["detail"]
    r = client.get(f"/v1/documents?after={new_id()}")
    assert r.status_code == 422 and "list again from the first page" in r.json()["detail"]


def _raw_post(base: str, path: str, headers: dict, declared: int, sent: bytes) -> tuple[int, dict]:
    """POST announcing `declared` body bytes but sending only `sent`: an answer proves the body was not awaited."""
    u = urlsplit(base)
    with socket.create_connection((u.hostname, u.port), timeout=10) as s:
        lines = [f"POST {path} HTTP/1.1", f"Host: {u.hostname}", "Content-Type: application/json",
                 f"Content-Length: {declared}", *(f"{k}: {v}" for k, v in headers.items()), "", ""]
        s.sendall("\r\n".join(lines).encode() + sent)
        data = b""
        while b"\r\n\r\n" not in data:
            data += s.recv(65536)
        head, body = data.split(b"\r\n\r\n", 1)
        length = int(next(h.split(b":")[1] for h in head.split(b"\r\n") if h.lower().startswith(b"content-length")))
        while len(body) < length:
            body += s.recv(65536)
    assert b"application/json" in head.lower(), head + body
    return int(head.split()[1]), json.loads(body)


def test_no_body_is_read_before_the_key_authenticates_and_json_bodies_are_capped(objects, api_url):
    client, ids = objects()
    path = f"/v1/documents/{ids['document_id']}/questions"
    key = client.headers["authorization"]
    t0 = time.monotonic()
    status, body = _raw_post(api_url, path, {}, 200 << 20, b'{"question": "' + b"x" * 1024)  # 200 MiB announced
    assert (status, body["error"]) == (401, "unauthorized") and time.monotonic() - t0 < 5
    status, body = _raw_post(api_url, path, {"Authorization": key}, 200 << 20, b'{"question": "')
    assert (status, body["error"]) == (413, "too_large") and f"{MAX_JSON:,} bytes" in body["detail"]

    def chunks():  # no Content-Length: counted while read
        yield b'{"question": "'
        for _ in range(MAX_JSON // 4096 + 1):
            yield b"x" * 4096
        yield b'"}'

    r = client.post(path, content=chunks(), headers={"Content-Type": "application/json"})
    assert (r.status_code, r.json()["error"]) == (413, "too_large") and f"{MAX_JSON:,}" in r.json()["detail"]
    r = client.post(path, json={"question": "y" * 20_001})  # under the body limit: parsed, and over the field's
    assert r.status_code == 422 and "question" in r.json()["detail"]
    big = make_pdf("large") + b"\0" * (MAX_JSON + 1)  # an upload is capped by the upload limit, not the JSON one
    assert upload(client, big).status_code == 201


def test_keyed_responses_carry_rate_limit_headers_and_a_request_id(make_client, api_url):
    client = make_client()
    for r in (client.get("/v1/documents"), client.get(f"/v1/documents/{new_id()}"), client.get("/v1/jobs?limit=0"),
              client.post(f"/v1/jobs/{new_id()}/cancel")):
        assert r.status_code in (200, 404, 422), r.text
        assert int(r.headers["ratelimit-limit"]) == 300  # the default burst
        assert 0 <= int(r.headers["ratelimit-remaining"]) < 300 and int(r.headers["ratelimit-reset"]) >= 0
        assert len(r.headers["x-request-id"]) == 32
    r = client.get("/v1/jobs", headers={"X-Request-Id": "trace-42"})
    assert r.headers["x-request-id"] == "trace-42"
    r = httpx.get(f"{api_url}/v1/jobs")
    assert r.status_code == 401 and "ratelimit-limit" not in r.headers and r.headers["x-request-id"]


def test_an_idle_event_stream_gets_keep_alive_comments(api_env, records, tmp_path):
    """FastAPI's EventSourceResponse pings an idle stream (every 15 s; 0.3 s in this process)."""
    port = free_port()
    code = ("import fastapi.routing as r, uvicorn; r._PING_INTERVAL = 0.3; "
            f"uvicorn.run('api.main:create_app', factory=True, host='127.0.0.1', port={port}, log_level='warning')")
    env = {**os.environ, **api_env, "WHOLEDOC_SSE_POLL_SECONDS": "5"}  # no change to report for a while
    with (tmp_path / "api.log").open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(base, proc, f"uvicorn (log: {tmp_path / 'api.log'})")
        with transaction(records) as s:
            key = create_api_key(s, create_tenant(s, f"t-{new_id()}").id)[1]
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=10) as client:
            doc = upload(client, make_pdf("idle")).json()  # its ingest job stays queued: no worker here
            lines = []
            with client.stream("GET", f"/v1/jobs/{doc['ingest_job_id']}/events") as r:
                assert r.headers["content-type"].startswith("text/event-stream")
                for line in r.iter_lines():
                    lines.append(line)
                    if lines.count(": ping") == 2:
                        break
        assert lines[0] == "event: progress" and json.loads(lines[1][6:])["state"] == "queued"
    finally:
        stop(proc)
