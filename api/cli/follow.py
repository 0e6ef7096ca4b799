"""Following jobs to their end with progress bars: a document's upload and extraction, one job's prefill and
generation (over SSE), or many jobs at once (polled)."""

import time
from pathlib import Path

from api.cli.output import err
from api.cli.progress import Bar
from api.cli.remote import ApiClient
from pipeline.words import plural

FINAL = ("done", "failed", "cancelled")


def follow_job(client: ApiClient, job_id: str, label: str, max_tokens: int | None = None) -> dict:
    """Follow a job over SSE with bars: extraction (ingest), or prefill then generation."""
    bars: dict[str, Bar] = {}

    def on_event(e: dict) -> None:
        if label == "extract":
            bars.setdefault("extract", Bar("extraction", 100, "%")).update(round(100 * (e["progress"] or 0)))
            return
        if e.get("parts"):  # a summary in parts: a bar per part (`part k/n`, its prefill), then the combining pass
            running = [p for p in e["parts"] if p["state"] == "running"]
            name = f"part {running[0]['part']}/{len(e['parts'])}" if running else None
            for key in [k for k in bars if k.startswith("part ") and k != name]:
                bars[key].update(bars[key].total or bars[key].done)  # an earlier part: done
                bars.pop(key).close()
            if name:
                bars.setdefault(name, Bar(name, running[0]["prefill_tokens_total"], "tokens")).update(
                    running[0]["prefill_tokens_done"] or 0, running[0]["prefill_tokens_total"])
            if e.get("stage") != "combine":
                return
        if e.get("prefill_tokens_total"):
            name = "combine" if e.get("stage") == "combine" else "prefill"
            bars.setdefault("prefill", Bar(name, e["prefill_tokens_total"], "tokens")).update(
                e["prefill_tokens_done"] or 0, e["prefill_tokens_total"])
        if e.get("tokens_generated"):
            if "prefill" in bars:
                bars["prefill"].update(bars["prefill"].total or 0)
                bars["prefill"].close()
            bars.setdefault("generate", Bar("generation", max_tokens, "tokens")).update(e["tokens_generated"])

    job = client.follow(job_id, on_event)
    for bar in bars.values():
        if job["state"] == "done":
            bar.update(bar.total or bar.done)
        bar.close()
    return job


def ready_document(client: ApiClient, file: Path) -> dict | None:
    """Upload with a bar, follow extraction; the ready document, or None (the reason printed)."""
    bar = Bar("upload", file.stat().st_size, "bytes")
    doc = client.upload(file, bar.update)
    bar.close()
    ingest = follow_job(client, doc["ingest_job_id"], "extract")
    doc = client.document(doc["id"])
    if ingest["state"] != "done":
        err(f"error: {file.name} could not be read: {doc.get('error') or ingest.get('error')}")
        return None
    n, unit = (doc["num_pages"], "page") if doc["kind"] == "pdf" else (doc["num_files"], "file")
    err(f"{file.name}: {doc['kind']}, {plural(n, unit)}, {doc['num_tokens']:,} tokens")
    return doc


def wait_for_jobs(client: ApiClient, jobs: list[dict]) -> None:
    """Poll until every job has ended, with one bar counting the ended ones (`questions` answered)."""
    bar, pending = Bar("answered", len(jobs), "questions"), {j["id"] for j in jobs}
    while pending:
        for job_id in sorted(pending):
            if client.job(job_id)["state"] in FINAL:
                pending.discard(job_id)
        bar.update(len(jobs) - len(pending))
        if pending:
            time.sleep(0.2)
    bar.close()
