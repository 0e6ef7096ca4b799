"""Auth on every route, and tenant isolation: another tenant's id is 404 on every id-bearing route."""

import re

import pytest

from tests.api.helpers import app_routes, digest_and_webhook_ids, finish, make_pdf, make_ready, upload

pytestmark = pytest.mark.services

ROUTES = [(m, p) for m, p, _ in app_routes()]
ID_ROUTES = [(m, p) for m, p in ROUTES if "{" in p]
BODIES = {"summaries": {"style": "brief"}, "questions": {"question": "why?"}}
BODIES |= {"{corpus_id}": {"name": "renamed"}, "documents": {"document_ids": ["0" * 32]}}  # a corpus: rename, add
BODIES |= {"digests": {"cron": "0 7 * * 1"}, "{digest_id}": {"paused": True}}  # a digest schedule: create, change


def test_route_enumeration_sees_the_id_routes():
    """The matrix below is built from the app itself; make sure it found the routes we know of."""
    assert {p for _, p in ID_ROUTES} >= {"/v1/documents/{document_id}", "/v1/documents/{document_id}/summaries",
                                          "/v1/documents/{document_id}/questions", "/v1/jobs/{job_id}",
                                          "/v1/jobs/{job_id}/cancel", "/v1/jobs/{job_id}/events",
                                          "/v1/results/{result_id}", "/v1/documents/{document_id}/pages/{page}.png"}


# POST /v1/session is the one route that takes no Bearer key: the web page signs in with a key in its body (without
# a live one it is 401 too; tests/api/test_api_web.py)
SIGN_IN = ("POST", "/v1/session")


@pytest.mark.parametrize("auth", [None, "Bearer wd_000000000000_nope", "Basic dXNlcjpwYXNz", "Bearer"])
def test_every_v1_route_needs_a_valid_key(api_url, auth):
    import httpx

    headers = {"Authorization": auth} if auth else {}
    for method, path in ROUTES:
        if (method, path) == SIGN_IN and auth is None:
            continue
        url = api_url + re.sub(r"\{[^}]+\}", "x" * 32, path)
        r = httpx.request(method, url, headers=headers, json=BODIES.get(path.rsplit("/", 1)[-1]), timeout=10)
        assert r.status_code == 401, (method, path, r.status_code, r.text)
        assert r.json()["error"] == "unauthorized"


@pytest.fixture
def owner_objects(make_client, records):
    """Tenant A with a ready document, a finished summary job and its result."""
    a = make_client()
    doc = upload(a, make_pdf("secret of A")).json()
    make_ready(records, doc["id"])
    job = a.post(f"/v1/documents/{doc['id']}/summaries", json={}).json()
    result_id = finish(records, job["id"], "A's private summary")
    batch_id = a.post("/v1/batches", json={"questions": ["A's question?"], "document_ids": [doc["id"]]}).json()["id"]
    corpus_id = a.post("/v1/corpora", json={"name": "reports of A"}).json()["id"]
    return a, {"corpus_id": corpus_id, **digest_and_webhook_ids(a, corpus_id),
               "document_id": doc["id"], "job_id": job["id"], "result_id": result_id, "page": 1, "batch_id": batch_id}


def test_other_tenant_gets_404_on_every_id_route(make_client, owner_objects):
    a, ids = owner_objects
    b = make_client()
    for method, path in ID_ROUTES:
        url = path.format(**ids)
        r = b.request(method, url, json=BODIES.get(path.rsplit("/", 1)[-1]))
        assert r.status_code == 404, (method, path, r.status_code, r.text)
        assert "A's private" not in r.text
    # …and nothing of A's shows up in B's lists, while A still sees (and owns) everything
    assert b.get("/v1/documents").json()["data"] == [] and b.get("/v1/jobs").json()["data"] == []
    assert a.get(f"/v1/results/{ids['result_id']}").json()["text"] == "A's private summary"
    assert a.get(f"/v1/documents/{ids['document_id']}").status_code == 200
