"""Property-based sweep of the live OpenAPI document (schemathesis; docs/reliability.md: A1, A5, the every-PR gate).

Every operation the running API documents is called with generated path, query and body values:
- as tenant A, on generated ids and on A's real objects: no 5xx, only documented statuses, bodies and media types;
- as tenant B on A's real objects (A1, BOLA): exactly what B gets for an id nobody owns — never one of A's objects;
- with no key, a malformed key, an unknown well-formed key and A's revoked key (A5): 401 every time.

Examples per operation: WHOLEDOC_SCHEMATHESIS_EXAMPLES (the every-PR gate runs 500); generation is derandomized.
"""

import os
import secrets
from http.cookiejar import DefaultCookiePolicy

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from api.main import create_app
from api.settings import ApiSettings
from pipeline.records.db import transaction
from pipeline.records.models import new_id
from pipeline.records.tenants import create_api_key, create_tenant, revoke_api_key
from tests.api.helpers import PUBLIC_HOOK, digest_and_webhook_ids, finish, make_pdf, make_ready, upload
from tests.helpers.services import uvicorn_api

pytestmark = [pytest.mark.services, pytest.mark.slow]

EXAMPLES = int(os.environ.get("WHOLEDOC_SCHEMATHESIS_EXAMPLES") or 50)  # ~25 s here; the gate: 500
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
SECRETS = ("private-of-A", "A's private summary")  # A's filename and result text: never in a response to B
UNAUTHENTICATED = ["/health", "/metrics"]
SIGN_IN = ("POST", "/v1/session")  # the web page signs in with a key in the body: no Bearer key needed


@pytest.fixture(scope="module")
def sweep_url(api_env, tmp_path_factory):
    """Its own API process: no per-key rate limit and no job cap, so thousands of calls never meet a 429."""
    env = {**api_env, "WHOLEDOC_RATE_PER_MIN": "0", "WHOLEDOC_MAX_ACTIVE_JOBS": "0"}
    with uvicorn_api(env, tmp_path_factory.mktemp("sweep") / "uvicorn.log") as url:
        yield url


@pytest.fixture(scope="module")
def live_schema(sweep_url):
    # keys are the test's to send (A's, B's or bad ones), not generated values
    config = schemathesis.Config.from_dict({"generation": {"with-security-parameters": False}})
    return schemathesis.openapi.from_url(f"{sweep_url}/openapi.json", config=config)


@pytest.fixture(scope="module")
def keys(records):
    """Tenant A's live and revoked keys, tenant B's key."""
    with transaction(records) as s:
        a, b = create_tenant(s, f"a-{new_id()}"), create_tenant(s, f"b-{new_id()}")
        _, key_a = create_api_key(s, a.id)
        revoked, key_revoked = create_api_key(s, a.id)
        revoke_api_key(s, a.id, revoked.prefix)
        _, key_b = create_api_key(s, b.id)
    return {"a": key_a, "revoked": key_revoked, "b": key_b}


class Seeds:
    """A's real objects, a fresh set per operation: a ready document, its finished summary job and the result.

    `POST /v1/jobs/{job_id}/cancel` gets the document's (still queued) ingest job, so it can succeed once;
    every other operation gets the finished job (its SSE stream ends at once)."""

    def __init__(self, url: str, key: str, records):
        self.client = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=30)
        self.records = records
        self.by_operation: dict[str, dict] = {}

    def ids(self, label: str) -> dict:
        if label not in self.by_operation:
            self.by_operation[label] = self._make(label)
        return self.by_operation[label]

    def renew(self, label: str) -> None:
        self.by_operation.pop(label, None)

    def _make(self, label: str) -> dict:
        doc = upload(self.client, make_pdf("secret of A"), name="private-of-A.pdf").json()
        make_ready(self.records, doc["id"])
        job = self.client.post(f"/v1/documents/{doc['id']}/summaries", json={}).json()
        result_id = finish(self.records, job["id"], "A's private summary")
        job_id = doc["ingest_job_id"] if label == "POST /v1/jobs/{job_id}/cancel" else job["id"]
        batch = self.client.post("/v1/batches", json={"questions": ["why?"], "document_ids": [doc["id"]]}).json()
        corpus = self.client.post("/v1/corpora", json={"name": f"corpus-of-A-{new_id()}"}).json()
        self.client.post(f"/v1/corpora/{corpus['id']}/documents", json={"document_ids": [doc["id"]]})
        return {"document_id": doc["id"], "job_id": job_id, "result_id": result_id,
                "corpus_id": corpus["id"], "batch_id": batch["id"],
                **digest_and_webhook_ids(self.client, corpus["id"])}  # other path values: generated


@pytest.fixture(scope="module")
def seeds(sweep_url, keys, records):
    s = Seeds(sweep_url, keys["a"], records)
    SEEDS[:] = [s]
    yield s
    s.client.close()


@pytest.fixture(scope="module")
def http():
    with requests.Session() as s:
        # keys only: the cookie a sign-in (POST /v1/session) sets must not sign later cases in (docs/web.md)
        s.cookies.set_policy(DefaultCookiePolicy(allowed_domains=[]))
        yield s


def _bearer(key: str) -> dict:
    return {"Authorization": f"Bearer {key}"}


def _error(response) -> str | None:
    try:
        return response.json().get("error")
    except ValueError:
        return None


def _operations():
    """Every (method, path) the app serves, read from the app itself; the live document must list exactly these."""
    app = create_app(ApiSettings(database_url="sqlite://", blob_url="file:///nonexistent"))
    spec = app.openapi()
    return sorted((m.upper(), p) for p, ops in spec["paths"].items() for m in ops)


OPERATIONS = _operations()
AUTHENTICATED = [(m, p) for m, p in OPERATIONS if p not in UNAUTHENTICATED and (m, p) != SIGN_IN]


# Explicit cases besides the generated ones, where a few random examples might never succeed
KNOWN_GOOD = {"POST /v1/documents": {"body": make_pdf("fuzz"), "media_type": "application/octet-stream"}}
KNOWN_GOOD |= {  # a valid cron and a public webhook URL are needles generated strings rarely find
    "POST /v1/corpora/{corpus_id}/digests": {"path_parameters": {"corpus_id": new_id()}, "body": {"cron": "0 7 * * 1"},
                                             "media_type": "application/json"},
    "POST /v1/webhooks": {"body": {"url": PUBLIC_HOOK, "events": ["job.done"]}, "media_type": "application/json"}}
SEEDS: list = []  # the module's Seeds, for known-good cases that name A's real objects (made when reached)


def _seeded(label: str, case) -> None:
    KNOWN_GOOD[label] = lambda: case(SEEDS[0].ids(label))


_seeded("POST /v1/batches", lambda ids: {"body": {"questions": ["why?"], "document_ids": [ids["document_id"]]},
                                         "media_type": "application/json"})
_seeded("POST /v1/corpora/{corpus_id}/documents", lambda ids: {
    "path_parameters": {"corpus_id": ids["corpus_id"]}, "body": {"document_ids": [ids["document_id"]]},
    "media_type": "application/json"})


def _sweep(operation, test) -> None:
    """Run `test(case)` on EXAMPLES generated cases (valid and invalid ones), derandomized."""
    cases = st.one_of(operation.as_strategy(GenerationMode.POSITIVE), operation.as_strategy(GenerationMode.NEGATIVE))
    test = given(cases)(test)
    if operation.label in KNOWN_GOOD:
        good = KNOWN_GOOD[operation.label]
        test = example(operation.Case(**(good() if callable(good) else good)))(test)
    settings(max_examples=EXAMPLES, derandomize=True, database=None, deadline=None,
             suppress_health_check=list(HealthCheck))(test)()


def test_the_live_document_lists_every_operation(live_schema):
    live = sorted((m.upper(), p) for p, ops in live_schema.raw_schema["paths"].items() for m in ops)
    assert live == OPERATIONS


@pytest.mark.parametrize(("method", "path"), OPERATIONS)
def test_every_operation_conforms_and_b_never_sees_a(method, path, live_schema, keys, seeds, http):
    label, seen = f"{method} {path}", {"a": set(), "b": set()}

    def one(case):
        valid = case.meta is None or case.meta.generation.mode.is_positive  # explicit cases are valid
        r = case.call_and_validate(session=http, headers=_bearer(keys["a"]), checks=CHECKS)
        seen["a"].add(r.status_code)
        if not case.path_parameters:
            return
        # BOLA: B on A's real ids gets what B gets on ids nobody owns (same status and error), never A's data
        case.path_parameters = {name: new_id() if name.endswith("_id") else value  # ids; a page number stays
                                for name, value in case.path_parameters.items()}
        unknown = case.call_and_validate(session=http, headers=_bearer(keys["b"]), checks=CHECKS)
        real = seeds.ids(label)
        case.path_parameters = {name: real.get(name, value) for name, value in case.path_parameters.items()}
        other = case.call_and_validate(session=http, headers=_bearer(keys["b"]), checks=CHECKS)
        seen["b"].add(other.status_code)
        assert (other.status_code, _error(other)) == (unknown.status_code, _error(unknown)), (label, other.text)
        # a body over the route's cap is refused before any lookup (413), equally for A's ids and unknown ones
        assert other.status_code in ((404, 413) if valid else (400, 404, 413, 422)), (label, other.text)
        assert not any(s in other.text for s in SECRETS), (label, other.text)
        # …and A on its own real objects (a deleted document is made again for the next example)
        mine = case.call_and_validate(session=http, headers=_bearer(keys["a"]), checks=CHECKS)
        seen["a"].add(mine.status_code)
        if method == "DELETE" and mine.status_code == 204:
            seeds.renew(label)

    _sweep(live_schema[path][method], one)
    # the sweep reached the objects themselves, not only its error paths
    assert any(200 <= code < 300 for code in seen["a"]), (label, seen)
    assert "{" not in path or 404 in seen["b"], (label, seen)


@pytest.fixture(scope="module")
def bad_keys(keys):
    """Authorization headers that must all be 401: none, malformed, well-formed but unknown, revoked."""
    unknown = f"wd_{secrets.token_hex(6)}_{secrets.token_urlsafe(32)}"
    return {"none": None, "malformed": "Bearer wd_not-a-key", "unknown": f"Bearer {unknown}",
            "revoked": f"Bearer {keys['revoked']}"}


@pytest.mark.parametrize(("method", "path"), AUTHENTICATED)
def test_every_operation_refuses_missing_bad_and_revoked_keys(method, path, live_schema, bad_keys, seeds, http):
    """A5: on A's real ids, with any generated query and body, no usable key is 401 on every operation."""
    real = seeds.ids("auth sweep")

    def one(case):
        case.path_parameters = {name: real.get(name, value) for name, value in case.path_parameters.items()}
        for kind, auth in bad_keys.items():
            r = case.call_and_validate(session=http, headers={"Authorization": auth} if auth else None, checks=CHECKS)
            assert r.status_code == 401 and _error(r) == "unauthorized", (method, path, kind, r.status_code, r.text)

    _sweep(live_schema[path][method], one)


# What the sweep found, pinned by hand so a change in generation cannot hide a regression.
FOUND = [  # (method, path, request kwargs, with A's key, status, error)
    ("GET", "/v1/jobs?state=queued%00", {}, True, 422, "invalid_request"),  # was 500: NUL reached PostgreSQL
    ("GET", "/v1/jobs?document_id=%00", {}, True, 422, "invalid_request"),
    ("GET", "/v1/documents/%00", {}, True, 422, "invalid_request"),
    ("GET", "/v1/documents?offset=99999999999999999999", {}, True, 422, "invalid_request"),  # was 500: bigint
    ("POST", "/v1/documents?filename=a%00.pdf", {"content": make_pdf()}, True, 422, "invalid_request"),  # was 500
    ("POST", "/v1/documents", {"content": b"--b\r\n[{}]\r\n--b--\r\n",  # was 500: MultipartParseError
                               "headers": {"Content-Type": "multipart/form-data; boundary=b"}}, True, 400,
     "bad_request"),
    ("POST", "/v1/documents/{document_id}/summaries", {"content": b"\xff\x06",  # was {"detail": …}, undocumented
                                                       "headers": {"Content-Type": "application/json"}}, True, 400,
     "bad_request"),
    ("POST", "/v1/documents/{document_id}/questions", {"content": b"\xff\x06",  # was 400 with no key at all
                                                       "headers": {"Content-Type": "application/json"}}, False, 401,
     "unauthorized"),
    ("POST", "/v1/documents/{document_id}/questions", {"content": b"{", "headers": {"Content-Type":
                                                       "application/json"}}, False, 401, "unauthorized"),  # was 422
    ("GET", "/v1/documents/a/b", {}, True, 404, "not_found"),  # was {"detail": "Not Found"}
]


@pytest.mark.parametrize(("method", "path", "kwargs", "with_key", "status", "error"), FOUND)
def test_what_the_sweep_found_stays_fixed(api_url, make_client, method, path, kwargs, with_key, status, error):
    client = make_client()
    if not with_key:
        client.headers.pop("Authorization")
    r = client.request(method, path.format(document_id=new_id()), **kwargs)
    assert (r.status_code, r.json()["error"]) == (status, error), r.text
    assert set(r.json()) == {"error", "detail"}


def test_a_multipart_filename_is_kept_without_control_characters(make_client):
    """Was a 500 (PostgreSQL holds no NUL); the name is a label, so it is cleaned rather than refused."""
    client = make_client()
    body = (b'--b\r\nContent-Disposition: form-data; name="file"; filename="a\x00b\x1f.pdf"\r\n\r\n' + make_pdf()
            + b"\r\n--b--\r\n")
    r = client.post("/v1/documents", content=body, headers={"Content-Type": "multipart/form-data; boundary=b"})
    assert (r.status_code, r.json()["filename"]) == (201, "ab.pdf"), r.text
