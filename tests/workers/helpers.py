"""Helpers for worker tests: send tasks like the API does, and wait on job rows."""

import os
from contextlib import contextmanager

from pipeline.records import jobs
from pipeline.records.db import transaction
from pipeline.records.documents import create_document
from pipeline.records.models import Job, Result, new_id
from pipeline.records.tenants import create_tenant
from tests.helpers.wait import wait_until


@contextmanager
def env(values: dict):
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def send(wk_env: dict, kind: str, job_id: str, tenant_id: str) -> None:
    """Enqueue by task name through a Celery app built for this test's broker (as the API does)."""
    with env(wk_env):
        from workers.app import QUEUE_FOR_TASK, TASK_FOR_KIND, make_app

        app = make_app()
        name = TASK_FOR_KIND[kind]
        app.send_task(name, args=[job_id, tenant_id], queue=QUEUE_FOR_TASK[name], task_id=job_id)
        app.close()


def new_document(records, blobs, data: bytes, kind: str = "pdf") -> tuple[str, str, str]:
    """A tenant, a stored upload and its queued ingest job: (tenant_id, document_id, job_id)."""
    with transaction(records) as s:
        tenant = create_tenant(s, f"t-{new_id()}")
    ref = blobs.put_bytes(tenant.id, data)
    with transaction(records) as s:
        doc = create_document(s, tenant.id, kind=kind, blob_key=ref.key, sha256=ref.sha256, size_bytes=ref.size,
                              media_type="application/pdf" if kind == "pdf" else "application/zip")
        job = jobs.create_job(s, tenant.id, "ingest", document_id=doc.id)
    blobs.add_ref(ref.key, doc.id)
    return tenant.id, doc.id, job.id


def wait_job(records, job_id: str, until, timeout: float = 60, what: str = "") -> Job:
    seen = {}

    def reached():
        with records() as s:
            seen["job"] = job = s.get(Job, job_id)
            return until(job)

    def describe():
        job = seen["job"]
        return (f"job {job_id} {what or 'condition'} (state={job.state} stage={job.stage} attempts={job.attempts} "
                f"error={job.error})")

    wait_until(reached, timeout, describe)
    return seen["job"]


def results_of(records, job_id: str) -> list[Result]:
    with records() as s:
        return list(s.query(Result).filter_by(job_id=job_id))
