"""/v1/corpora/{id}/digests and /v1/digests on a real API: schedule (400 for a bad cron, zone, or one firing more
often than WHOLEDOC_DIGEST_MIN_INTERVAL), list, get, pause, run now (202 + Location, covering the corpus's documents),
runs, delete; another tenant's corpus is 404."""

import pytest

from pipeline.records.models import new_id
from tests.api.helpers import make_pdf, upload

pytestmark = pytest.mark.services


def _corpus(client, *docs: str) -> str:
    corpus = client.post("/v1/corpora", json={"name": f"c-{new_id()}"}).json()
    ids = [upload(client, make_pdf(text)).json()["id"] for text in docs]
    if ids:
        assert client.post(f"/v1/corpora/{corpus['id']}/documents", json={"document_ids": ids}).status_code == 200
    return corpus["id"]


@pytest.mark.parametrize(("body", "why"), [
    ({"cron": "*/5 * * * *"}, "the shortest interval allowed is 15 min (WHOLEDOC_DIGEST_MIN_INTERVAL)"),
    ({"cron": "0 7 * * 1", "timezone": "Mars/Olympus"}, "not an IANA time zone"),
    ({"cron": "0 7 * * 1 2026"}, "not a 5-field cron expression"),
])
def test_bad_schedules_are_400_with_a_reason(make_client, body, why):
    client = make_client()
    r = client.post(f"/v1/corpora/{_corpus(client)}/digests", json=body)
    assert (r.status_code, r.json()["error"]) == (400, "bad_request") and why in r.json()["detail"], r.text


def test_schedule_list_pause_run_now_runs_delete(make_client):
    client = make_client()
    corpus_id = _corpus(client, f"alpha {new_id()}", f"beta {new_id()}")
    r = client.post(f"/v1/corpora/{corpus_id}/digests", headers={"Idempotency-Key": f"d-{new_id()}"},
                    json={"cron": "0 7 * * 1", "timezone": "Europe/Berlin", "style": "executive"})
    assert r.status_code == 201, r.text
    digest = r.json()
    assert r.headers["location"] == f"/v1/digests/{digest['id']}"
    assert (digest["corpus_id"], digest["style"], digest["paused"]) == (corpus_id, "executive", False)
    assert digest["next_run_at"].endswith(("T06:00:00Z", "T05:00:00Z"))  # Monday 07:00 in Berlin, in UTC
    assert [d["id"] for d in client.get(f"/v1/digests?corpus_id={corpus_id}").json()["data"]] == [digest["id"]]

    paused = client.patch(f"/v1/digests/{digest['id']}", json={"paused": True})
    assert paused.status_code == 200 and paused.json()["paused"] is True
    assert client.patch(f"/v1/digests/{digest['id']}", json={"cron": "* * * * *"}).status_code == 400
    assert client.get(f"/v1/digests/{digest['id']}").json()["cron"] == "0 7 * * 1"

    run = client.post(f"/v1/digests/{digest['id']}/run")  # run now works while paused
    assert run.status_code == 202, run.text
    assert run.headers["location"] == f"/v1/digests/{digest['id']}/runs/{run.json()['id']}"
    body = run.json()
    assert (body["state"], body["trigger"], body["digest_id"], len(body["document_ids"])) == (
        "queued", "manual", digest["id"], 2)
    runs = client.get(f"/v1/digests/{digest['id']}/runs").json()["data"]
    assert [x["id"] for x in runs] == [body["id"]]
    assert client.get(run.headers["location"]).json()["document_ids"] == body["document_ids"]

    assert client.delete(f"/v1/digests/{digest['id']}").status_code == 204
    assert client.get(f"/v1/digests/{digest['id']}").status_code == 404
    assert client.get(f"/v1/digests/{digest['id']}/runs").status_code == 404


def test_another_tenants_corpus_is_404(make_client):
    a, b = make_client(), make_client()
    r = b.post(f"/v1/corpora/{_corpus(a)}/digests", json={"cron": "0 7 * * 1"})
    assert (r.status_code, r.json()["error"]) == (404, "not_found"), r.text
