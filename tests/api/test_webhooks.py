"""/v1/webhooks on a real API process (which, like production, refuses private addresses): register with the secret
shown once, list, get, delete, deliveries with their attempts; loopback, private and link-local URLs are 400."""

import pytest
from standardwebhooks.webhooks import Webhook

from pipeline.records import webhooks
from pipeline.records.db import transaction
from pipeline.webhooks.signing import body_bytes, signed_headers

pytestmark = pytest.mark.services
PUBLIC = "https://93.184.215.14/hooks/wholedoc"  # a public address literal: no DNS needed


@pytest.mark.parametrize("url", ["http://127.0.0.1:9/hook", "http://localhost/hook", "http://[::1]/hook",
                                 "http://169.254.169.254/latest/meta-data", "http://192.168.0.10/hook",
                                 "http://no-such-host.invalid/hook", "ftp://93.184.215.14/hook"])
def test_unsafe_urls_are_refused_with_a_reason(make_client, url):
    client = make_client()
    r = client.post("/v1/webhooks", json={"url": url, "events": ["job.done"]})
    assert r.status_code == 400 and r.json()["error"] == "bad_request", r.text
    assert any(word in r.json()["detail"] for word in ("loopback", "resolve", "http://")), r.text
    assert client.get("/v1/webhooks").json()["data"] == []


def test_register_list_get_deliveries_delete(make_client, records):
    client = make_client()
    r = client.post("/v1/webhooks", json={"url": PUBLIC, "events": ["job.done", "digest.completed"]},
                    headers={"Idempotency-Key": "hook-1"})
    assert r.status_code == 201, r.text
    hook = r.json()
    assert r.headers["location"] == f"/v1/webhooks/{hook['id']}"
    assert hook["secret"].startswith("whsec_") and hook["events"] == ["digest.completed", "job.done"]
    again = client.post("/v1/webhooks", json={"url": PUBLIC, "events": ["job.done", "digest.completed"]},
                        headers={"Idempotency-Key": "hook-1"})
    assert again.json()["id"] == hook["id"] and again.headers["idempotent-replayed"] == "true"
    # the secret is shown once: never in a read
    got = client.get(f"/v1/webhooks/{hook['id']}").json()
    assert "secret" not in got and got["url"] == PUBLIC
    listed = client.get("/v1/webhooks").json()
    assert [h["id"] for h in listed["data"]] == [hook["id"]] and "secret" not in listed["data"][0]

    with transaction(records) as s:
        webhooks.emit(s, client.tenant_id, "job.done", "job-x", {"job_id": "job-x"})
        webhooks.emit(s, client.tenant_id, "job.failed", "job-y", {"job_id": "job-y"})  # not subscribed
    deliveries = client.get(f"/v1/webhooks/{hook['id']}/deliveries").json()["data"]
    assert [(d["event"], d["state"], d["attempts"]) for d in deliveries] == [("job.done", "pending", [])]
    d = deliveries[0]
    body = body_bytes(d["payload"])  # what is sent is exactly what the listing shows, and the secret signs it
    assert Webhook(hook["secret"]).verify(body, signed_headers(hook["secret"], d["message_id"], body)) == d["payload"]

    assert client.delete(f"/v1/webhooks/{hook['id']}").status_code == 204
    assert client.get(f"/v1/webhooks/{hook['id']}").status_code == 404
    assert client.get(f"/v1/webhooks/{hook['id']}/deliveries").status_code == 404


def test_bad_bodies_are_422(make_client):
    client = make_client()
    for body in ({"url": PUBLIC, "events": []}, {"url": PUBLIC, "events": ["job.started"]}, {"events": ["job.done"]}):
        r = client.post("/v1/webhooks", json=body)
        assert (r.status_code, r.json()["error"]) == (422, "invalid_request"), r.text
