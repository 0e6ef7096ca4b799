"""Helpers of the fault scenarios: tenants with keys, the stack's environment, and counting how jobs ended."""

import time

import httpx

from pipeline.records.models import Job, Result
from tests.faults.report import Row
from tests.helpers import tenants
from tests.helpers.wait import wait_until

FINISHED = ("done", "failed", "cancelled")


def tenant_client(records, base_url: str) -> httpx.Client:
    """An httpx client with a new tenant's API key (client.tenant_id set)."""
    return tenants.tenant_client(records, base_url, "f")


def stack_env(db_url: str, broker: str, blob_url: str, inference_url: str, home, **extra: str) -> dict:
    """A deployment's environment with the timings shortened so a fault is noticed and recovered in seconds."""
    return {"WHOLEDOC_DATABASE_URL": db_url, "WHOLEDOC_BROKER_URL": broker, "WHOLEDOC_BLOB_URL": blob_url,
            "WHOLEDOC_INFERENCE_URL": inference_url, "WHOLEDOC_LEASE_SECONDS": "2",
            "WHOLEDOC_RECONCILE_SECONDS": "1", "WHOLEDOC_RESEND_QUEUED_AFTER": "3", "WHOLEDOC_RETRY_BACKOFF": "0.3",
            "WHOLEDOC_SSE_POLL_SECONDS": "0.05", "WHOLEDOC_HOME": str(home), **extra}


def jobs_state(records, job_ids: list[str]) -> dict[str, tuple[Job, int]]:
    """{job id: (its row, how many results it has)}."""
    with records() as s:
        out = {}
        for jid in job_ids:
            out[jid] = (s.get(Job, jid), s.query(Result).filter_by(job_id=jid).count())
        return out


def wait_finished(records, job_ids: list[str], timeout: float) -> float:
    """Until every job has finished; returns the seconds it took."""
    t0 = time.monotonic()

    def finished():
        return all(job.state in FINISHED for job, _ in jobs_state(records, job_ids).values())

    def describe():
        return "all jobs finished: " + ", ".join(f"{j.id[:8]}={j.state}/{j.attempts}"
                                                 for j, _ in jobs_state(records, job_ids).values())

    wait_until(finished, timeout, describe, 0.2)
    return time.monotonic() - t0


def outcome(scenario: str, records, job_ids: list[str], recover_s: float, clear: tuple[str, ...] = (),
            results: bool = True) -> Row:
    """The scenario's row: a failed job counts as failed clearly when its error holds one of `clear`. Jobs that
    store no result (ingest: `results=False`) count as one result when done."""
    seen = jobs_state(records, job_ids)
    if not results:
        seen = {k: (j, int(j.state == "done")) for k, (j, _) in seen.items()}
    done = sum(1 for j, n in seen.values() if j.state == "done" and n == 1)
    failed = sum(1 for j, _ in seen.values() if j.state == "failed" and any(c in (j.error or "") for c in clear))
    lost = sum(1 for j, n in seen.values() if j.state not in FINISHED or (j.state == "done" and n == 0))
    duplicated = sum(1 for _, n in seen.values() if n > 1)
    return Row(scenario, len(job_ids), done, failed, lost, duplicated, round(recover_s, 1))
