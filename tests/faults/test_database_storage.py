"""PostgreSQL restarted mid-run, and the S3 endpoint unreachable during uploads and during ingest, on real processes
(uvicorn, a Celery worker with beat, a private PostgreSQL and Redis, moto's S3 behind a cut-off, an
OpenAI-compatible fault server). docs/reliability.md, "Faults on real processes"."""

import time
from datetime import timedelta

import pytest
from minio import Minio

from pipeline.records.models import Document
from pipeline.storage.s3 import S3BlobStore
from tests.api.helpers import make_pdf, upload
from tests.faults.helpers import jobs_state, outcome, stack_env, tenant_client, wait_finished
from tests.faults.services import CutOff
from tests.helpers.services import start_worker, stop, uvicorn_api
from tests.helpers.wait import wait_until
from tests.pipeline.faultserver import FaultServer, Reply

pytestmark = [pytest.mark.services, pytest.mark.slow]
BUCKET = "wholedoc-faults"


@pytest.fixture(scope="module")
def stack(module_db, private_redis, moto_endpoint, records, tmp_path_factory):
    logs = tmp_path_factory.mktemp("faults-db-s3")
    llm, cut = FaultServer(), CutOff(moto_endpoint)
    broker = private_redis.url.rsplit("/", 1)[0] + "/1"
    env = stack_env(module_db, broker, f"s3://testing:testing@{BUCKET}?endpoint={cut.endpoint}&secure=0"
                                       "&region=us-east-1", llm.base_url, logs, WHOLEDOC_MODEL=llm.model)
    worker = start_worker(env, logs / "worker.log", name="f1", extra=("-B", "-s", str(logs / "beat-schedule")))
    try:
        with uvicorn_api(env, logs / "uvicorn.log") as url:
            yield {"url": url, "llm": llm, "cut": cut, "records": records, "logs": logs}
    finally:
        stop(worker)
        llm.close()
        cut.close()


def _ingested(client, records, n: int, word: str) -> list[dict]:
    docs = [upload(client, make_pdf(f"{word} {i}", pages=2), f"{word}{i}.pdf").json() for i in range(n)]
    wait_finished(records, [d["ingest_job_id"] for d in docs], 60)
    return docs


def test_postgres_restart_mid_run_answers_503_then_recovers_without_loss(stack, private_pg, fault_rows):
    records, llm = stack["records"], stack["llm"]
    client = tenant_client(records, stack["url"])
    docs = _ingested(client, records, 5, "pg")
    llm.default = Reply(content=tuple(f"p{i} " for i in range(20)), chunk_delay=0.05)
    job_ids = []
    for style in ("brief", "detailed"):
        for d in docs:
            r = client.post(f"/v1/documents/{d['id']}/summaries", json={"style": style})
            assert r.status_code == 202, r.text
            job_ids.append(r.json()["id"])
    wait_until(lambda: any(j.state == "running" for j, _ in jobs_state(records, job_ids).values()), 30,
               "a summary running")
    records.kw["bind"].dispose()  # the test's own pool holds no connection across the outage

    private_pg.stop("fast")
    down_at = time.monotonic()
    during = [client.get(f"/v1/jobs/{job_ids[0]}"), client.get("/v1/documents"),
              client.post(f"/v1/documents/{docs[0]['id']}/questions", json={"question": "Who?"})]
    for r in during:
        assert r.status_code == 503, (r.status_code, r.text)
        assert r.json()["error"] == "service_unavailable" and int(r.headers["Retry-After"]) >= 1
    wait_until(lambda: time.monotonic() - down_at > 3, 5, "a 3 s outage")
    private_pg.start()
    back_at = time.monotonic()

    # the API's pool recovers in the same process (pre-ping): the first requests after the restart answer 200
    for _ in range(3):
        r = client.get(f"/v1/jobs/{job_ids[0]}")
        assert r.status_code == 200, r.text
    wait_finished(records, job_ids, 90)
    row = outcome("PostgreSQL restarted mid-run (10 summaries)", records, job_ids, time.monotonic() - back_at)
    fault_rows.append(row)
    assert (row.done, row.lost, row.duplicated) == (len(job_ids), 0, 0), row


def _tenant_blobs(tenant_id: str, moto_endpoint: str) -> list[str]:
    client = Minio(moto_endpoint, access_key="testing", secret_key="testing", secure=False, region="us-east-1")
    return [o.object_name for o in client.list_objects(BUCKET, prefix=f"tenants/{tenant_id}/blobs/", recursive=True)]


def test_s3_down_during_upload_answers_503_and_keeps_nothing(stack, moto_endpoint, fault_rows):
    records, cut = stack["records"], stack["cut"]
    client = tenant_client(records, stack["url"])
    cut.down()
    try:
        t0 = time.monotonic()
        r = upload(client, make_pdf("s3 down", pages=1), "down.pdf")
        assert r.status_code == 503, r.text
        assert r.json()["error"] == "service_unavailable" and "blob store" in r.json()["detail"]
        assert int(r.headers["Retry-After"]) >= 1
    finally:
        cut.up()
    with records() as s:
        assert s.query(Document).filter_by(tenant_id=client.tenant_id).count() == 0  # no orphan row
    assert _tenant_blobs(client.tenant_id, moto_endpoint) == []  # no half-written blob
    again = upload(client, make_pdf("s3 down", pages=1), "down.pdf")
    assert again.status_code == 201, again.text
    wait_finished(records, [again.json()["ingest_job_id"]], 60)
    fault_rows.append(outcome("S3 unreachable during an upload (503, retried)", records,
                              [again.json()["ingest_job_id"]], time.monotonic() - t0, results=False))


def test_s3_down_during_ingest_is_retried_and_the_sweep_keeps_every_blob(stack, moto_endpoint, fault_rows):
    records, cut, llm = stack["records"], stack["cut"], stack["llm"]
    client = tenant_client(records, stack["url"])
    [first] = _ingested(client, records, 1, "busy")
    llm.script.append(Reply(content=("held",), hang=3))  # the worker is busy while the next uploads queue up
    held = client.post(f"/v1/documents/{first['id']}/summaries", json={"style": "brief"}).json()["id"]
    wait_until(lambda: jobs_state(records, [held])[held][0].state == "running", 30, "the held summary running")
    docs = [upload(client, make_pdf(f"ingest {i}", pages=2), f"i{i}.pdf").json() for i in range(3)]
    ingest_ids = [d["ingest_job_id"] for d in docs]
    cut.down()
    try:
        wait_until(lambda: any("unavailable" in (j.error or "") for j, _ in jobs_state(records, ingest_ids).values()),
                   60, "an ingest attempt failing on the unreachable blob store")
    finally:
        cut.up()
    back_at = time.monotonic()
    wait_finished(records, ingest_ids + [held], 90)
    row = outcome("S3 unreachable during ingest (3 uploads)", records, ingest_ids, time.monotonic() - back_at,
                  results=False)
    fault_rows.append(row)
    assert (row.done, row.lost) == (3, 0), row
    assert all(j.attempts >= 1 for j, _ in jobs_state(records, ingest_ids).values())
    with records() as s:
        rows = s.query(Document).filter_by(tenant_id=client.tenant_id).all()
        referenced = {k for d in rows for k in (d.blob_key, d.text_blob_key) if k}
    store = S3BlobStore(Minio(moto_endpoint, access_key="testing", secret_key="testing", secure=False,
                              region="us-east-1"), BUCKET)
    assert store.sweep(client.tenant_id, referenced, min_age=timedelta(0)) == []  # nothing unreferenced was left
