"""The records behind the API conventions, on SQLite and PostgreSQL: cursor pages that new rows never shift, stored
responses of idempotency keys (replay, reuse with another request, expiry and purge, a race on one key), and finding
an upload's bytes again."""

import threading
from datetime import timedelta

import pytest
from sqlalchemy.exc import IntegrityError

from pipeline.errors import IdempotencyKeyReused, InvalidCursor
from pipeline.records import idempotency, jobs
from pipeline.records.db import transaction
from pipeline.records.documents import create_document, find_by_sha256, list_documents
from pipeline.records.models import new_id
from pipeline.records.tenants import create_tenant
from pipeline.records.types import utcnow


def _tenant(db) -> str:
    with transaction(db) as s:
        return create_tenant(s, f"t-{new_id()}").id


def _docs(db, tenant_id: str, n: int, sha: str = "b" * 64) -> list[str]:
    ids = []
    for _ in range(n):
        with transaction(db) as s:
            ids.append(create_document(s, tenant_id, kind="pdf", blob_key=f"tenants/{tenant_id}/blobs/sha256/{sha}",
                                       sha256=sha, size_bytes=1).id)
    return ids


def _walk(db, tenant_id: str, limit: int, between=None) -> list[str]:
    """Every id, page by page; `between(i)` runs after page i (to insert rows mid-walk)."""
    seen, after, i = [], None, 0
    while True:
        with db() as s:
            p = list_documents(s, tenant_id, limit=limit, after=after)
        seen += [d.id for d in p.rows]
        assert p.last_id == (p.rows[-1].id if p.rows else None)
        if not p.has_more:
            return seen
        after, i = p.last_id, i + 1
        if between:
            between(i)


def test_pages_walk_newest_first_and_new_rows_never_shift_them(db):
    tenant = _tenant(db)
    old = _docs(db, tenant, 5)
    walked = _walk(db, tenant, 2, between=lambda i: _docs(db, tenant, 2))  # 2 new rows after every page
    assert walked == old[::-1]  # every row that existed, once, newest first: the new ones shifted nothing
    with db() as s:
        first = list_documents(s, tenant, limit=50)
    assert len(first.rows) == 5 + 2 * 2 and not first.has_more


def test_a_cursor_the_tenant_does_not_own_is_invalid_like_an_unknown_one(db):
    a, b = _tenant(db), _tenant(db)
    a_doc = _docs(db, a, 1)[0]
    with db() as s:
        for after in (a_doc, new_id()):
            with pytest.raises(InvalidCursor, match="list again from the first page") as err:
                list_documents(s, b, limit=10, after=after)
            assert after in str(err.value)
        assert jobs.list_jobs(s, a, limit=1).rows == []


def test_the_newest_document_with_the_same_bytes_is_found(db):
    tenant = _tenant(db)
    first, second = _docs(db, tenant, 2, sha="c" * 64)
    with db() as s:
        assert find_by_sha256(s, tenant, "c" * 64).id == second
        assert find_by_sha256(s, tenant, "d" * 64) is None
        assert find_by_sha256(s, _tenant(db), "c" * 64) is None  # per tenant


def _remember(db, tenant: str, key: str, fp: str, *, now=None, body=None):
    with transaction(db) as s:
        idempotency.remember(s, tenant, key, fp, "POST /v1/x", status_code=201, body=body or {"id": "1"},
                             location="/v1/x/1", now=now)


def test_a_stored_response_is_found_for_its_request_only_until_it_expires(db):
    tenant = _tenant(db)
    fp = idempotency.fingerprint("post", "/v1/x", {"a": "1"}, {"b": [1, 2], "c": None})
    assert fp == idempotency.fingerprint("POST", "/v1/x", {"a": "1"}, {"c": None, "b": [1, 2]})  # order-free
    _remember(db, tenant, "k1", fp)
    with db() as s:
        row = idempotency.find(s, tenant, "k1", fp)
        assert (row.status_code, row.body, row.location) == (201, {"id": "1"}, "/v1/x/1")
        assert idempotency.find(s, _tenant(db), "k1", fp) is None  # keys are per tenant
        with pytest.raises(IdempotencyKeyReused, match="k1.*POST /v1/x"):
            idempotency.find(s, tenant, "k1", idempotency.fingerprint("POST", "/v1/x", {}, {}))
        later = utcnow() + idempotency.TTL + timedelta(seconds=1)
        assert idempotency.find(s, tenant, "k1", "another", now=later) is None  # expired: as if never sent
    _remember(db, tenant, "k1", "another", now=utcnow() + idempotency.TTL + timedelta(seconds=1))  # replaces it
    with transaction(db) as s:
        assert idempotency.purge_expired(s, now=utcnow() + 3 * idempotency.TTL) >= 1
    with db() as s:
        assert idempotency.find(s, tenant, "k1", "another", now=utcnow() + idempotency.TTL) is None


@pytest.mark.parametrize("db_url", [pytest.param("pg", marks=pytest.mark.services)], indirect=True)
def test_two_requests_racing_with_one_key_store_one_response(db):
    """PostgreSQL: the second insert waits for the first transaction, then fails once it commits."""
    tenant, outcome = _tenant(db), {}
    first = db()
    first.begin()
    idempotency.remember(first, tenant, "race", "fp", "POST /v1/x", status_code=202, body={"id": "a"}, location=None)

    def second():
        try:
            _remember(db, tenant, "race", "fp", body={"id": "b"})
            outcome["second"] = "stored"
        except IntegrityError:
            outcome["second"] = "refused"

    t = threading.Thread(target=second)
    t.start()
    t.join(1.0)
    assert t.is_alive(), "the second insert should wait on the first, uncommitted one"
    first.commit()
    first.close()
    t.join(10)
    assert outcome == {"second": "refused"}
    with db() as s:
        assert idempotency.find(s, tenant, "race", "fp").body == {"id": "a"}
