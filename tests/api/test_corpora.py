"""Corpora on a real API process (uvicorn, PostgreSQL, Redis): create / list / get / rename / delete, membership,
upload straight into a corpus; deleting a corpus or taking a document out of one never deletes the document."""

import pytest

from pipeline.records.models import new_id
from tests.api.helpers import make_pdf, upload

pytestmark = pytest.mark.services


def test_corpus_lifecycle_and_membership(make_client):
    c = make_client()
    made = c.post("/v1/corpora", json={"name": "reports"})
    assert made.status_code == 201 and made.headers["location"] == f"/v1/corpora/{made.json()['id']}"
    corpus = made.json()
    assert (corpus["name"], corpus["document_count"]) == ("reports", 0)
    dup = c.post("/v1/corpora", json={"name": "reports"})
    assert dup.status_code == 409 and "reports" in dup.json()["detail"]

    a, b = (upload(c, make_pdf(f"doc {x} {new_id()}")).json()["id"] for x in "ab")
    unknown = c.post(f"/v1/corpora/{corpus['id']}/documents", json={"document_ids": [a, new_id()]})
    assert unknown.status_code == 404  # nothing added
    assert c.get(f"/v1/corpora/{corpus['id']}").json()["document_count"] == 0
    added = c.post(f"/v1/corpora/{corpus['id']}/documents", json={"document_ids": [a, b, a]})
    assert added.status_code == 200 and added.json()["added"] == 2
    assert c.post(f"/v1/corpora/{corpus['id']}/documents", json={"document_ids": [a]}).json()["added"] == 0
    listed = c.get(f"/v1/corpora/{corpus['id']}/documents").json()
    assert sorted(d["id"] for d in listed["data"]) == sorted([a, b]) and not listed["has_more"]

    # upload straight into the corpus: a new document, and the same bytes again (the existing document)
    pdf = make_pdf(f"straight in {new_id()}")
    into = c.post(f"/v1/documents?corpus_id={corpus['id']}", content=pdf,
                  headers={"Content-Type": "application/octet-stream"})
    assert into.status_code == 201
    other = c.post("/v1/corpora", json={"name": "other"}).json()
    again = c.post(f"/v1/documents?corpus_id={other['id']}", content=pdf,
                   headers={"Content-Type": "application/octet-stream"})
    assert again.status_code == 200 and again.json()["id"] == into.json()["id"]
    assert c.get(f"/v1/corpora/{other['id']}").json()["document_count"] == 1  # one document, two corpora
    assert c.get(f"/v1/corpora/{corpus['id']}").json()["document_count"] == 3
    missing = c.post(f"/v1/documents?corpus_id={new_id()}", content=make_pdf(f"nowhere {new_id()}"),
                     headers={"Content-Type": "application/octet-stream"})
    assert missing.status_code == 404
    assert len(c.get("/v1/documents", params={"limit": 200}).json()["data"]) == 3  # the refused upload kept nothing

    renamed = c.patch(f"/v1/corpora/{corpus['id']}", json={"name": "quarterly"})
    assert renamed.status_code == 200 and renamed.json()["name"] == "quarterly"
    assert c.patch(f"/v1/corpora/{corpus['id']}", json={"name": "other"}).status_code == 409
    names = [x["name"] for x in c.get("/v1/corpora").json()["data"]]
    assert names == ["other", "quarterly"]  # newest first

    assert c.delete(f"/v1/corpora/{corpus['id']}/documents/{a}").status_code == 204
    assert c.delete(f"/v1/corpora/{corpus['id']}/documents/{a}").status_code == 404
    assert c.get(f"/v1/documents/{a}").status_code == 200  # out of the corpus, not deleted
    assert c.delete(f"/v1/corpora/{corpus['id']}").status_code == 204
    assert c.get(f"/v1/corpora/{corpus['id']}").status_code == 404
    assert c.get(f"/v1/documents/{b}").status_code == 200  # the corpus went, its documents stay
    assert c.get(f"/v1/corpora/{other['id']}").json()["document_count"] == 1


def test_another_tenant_sees_no_corpus_and_cannot_add_its_documents(make_client):
    a, b = make_client(), make_client()
    corpus = a.post("/v1/corpora", json={"name": "mine"}).json()
    doc_a = upload(a, make_pdf(f"a's {new_id()}")).json()["id"]
    doc_b = upload(b, make_pdf(f"b's {new_id()}")).json()["id"]
    assert b.get(f"/v1/corpora/{corpus['id']}").status_code == 404
    assert b.post(f"/v1/corpora/{corpus['id']}/documents", json={"document_ids": [doc_b]}).status_code == 404
    assert a.post(f"/v1/corpora/{corpus['id']}/documents", json={"document_ids": [doc_b]}).status_code == 404
    assert b.get("/v1/corpora").json()["data"] == []
    assert b.post("/v1/corpora", json={"name": "mine"}).status_code == 201  # names are per tenant
    assert a.post(f"/v1/corpora/{corpus['id']}/documents", json={"document_ids": [doc_a]}).json()["added"] == 1
