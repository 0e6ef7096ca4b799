"""What `wholedoc summarize` and `wholedoc ask` share: reach a deployment (or start an embedded one), upload
with progress, follow extraction, prefill and generation, and print the result (or, for many questions about one
document, submit them all at once and print every answer in order, as text or JSON lines)."""

import _thread
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from api.progress import Bar
from api.remote import ApiClient, ApiError
from pipeline.errors import NotFound
from pipeline.records.db import database_url, make_engine, session_factory, transaction, wholedoc_home
from pipeline.records.tenants import authenticate, create_api_key, create_tenant, get_tenant

LOCAL_TENANT = "local"


class StackDied(RuntimeError):
    """A process of the embedded deployment exited while the command was using it."""


def _err(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def local_key(home: Path) -> str:
    """The embedded deployment's key for the `local` tenant, kept (mode 600) in the data folder."""
    path = home / "local.key"
    engine = make_engine(database_url())
    sessions = session_factory(engine)
    try:
        if path.exists():
            key = path.read_text().strip()
            with sessions() as s:
                if authenticate(s, key) is not None:
                    return key
        with transaction(sessions) as s:
            try:
                tenant = get_tenant(s, LOCAL_TENANT)
            except NotFound:
                tenant = create_tenant(s, LOCAL_TENANT)
            _, key = create_api_key(s, tenant.id, name="embedded")
        path.write_text(key + "\n")
        path.chmod(0o600)
        return key
    finally:
        engine.dispose()


@contextmanager
def connect() -> Iterator[ApiClient]:
    """WHOLEDOC_API_URL + WHOLEDOC_API_KEY → that deployment; nothing configured → an embedded one, stopped after."""
    url = os.environ.get("WHOLEDOC_API_URL")
    if url:
        key = os.environ.get("WHOLEDOC_API_KEY")
        if not key:
            raise SystemExit("WHOLEDOC_API_URL is set but WHOLEDOC_API_KEY is not (wholedoc admin create-key T)")
        client = ApiClient(url, key)
        try:
            yield client
        finally:
            client.close()
        return
    from api.stack import Stack

    home = wholedoc_home()
    _err(f"starting an embedded wholedoc in {home} (set WHOLEDOC_API_URL to use a deployment)…")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so the stack below is always stopped
    with Stack(home=home, say=_err) as stack:
        client = ApiClient(stack.url, local_key(home))
        died: list[str] = []

        def watch() -> None:  # a process of the stack died: stop waiting on it
            while stack.procs and not died:
                name = stack.dead()
                if name:
                    died.append(name)
                    _thread.interrupt_main()
                time.sleep(0.5)

        threading.Thread(target=watch, daemon=True).start()
        try:
            yield client
        except KeyboardInterrupt:
            if died:
                log = home / "logs" / f"{died[0]}.log"
                raise StackDied(f"the embedded {died[0]} process exited; see {log}") from None
            raise
        finally:
            died.append("")  # stops the watcher
            client.close()


def _follow(client: ApiClient, job_id: str, label: str, max_tokens: int | None = None) -> dict:
    """Follow a job over SSE with bars: extraction (ingest), or prefill then generation."""
    bars: dict[str, Bar] = {}

    def on_event(e: dict) -> None:
        if label == "extract":
            bars.setdefault("extract", Bar("extraction", 100, "%")).update(round(100 * (e["progress"] or 0)))
            return
        if e.get("prefill_tokens_total"):
            bars.setdefault("prefill", Bar("prefill", e["prefill_tokens_total"], "tokens")).update(
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


def _ready_document(client: ApiClient, file: Path) -> dict | None:
    """Upload with a bar, follow extraction; the ready document, or None (the reason printed)."""
    bar = Bar("upload", file.stat().st_size, "bytes")
    doc = client.upload(file, bar.update)
    bar.close()
    ingest = _follow(client, doc["ingest_job_id"], "extract")
    doc = client.document(doc["id"])
    if ingest["state"] != "done":
        _err(f"error: {file.name} could not be read: {doc.get('error') or ingest.get('error')}")
        return None
    _err(f"{file.name}: {doc['kind']}, {doc['num_sections']} sections, {doc['num_tokens']:,} tokens")
    return doc


def _usage_line(u: dict) -> str:
    return (f"{u.get('prompt_tokens')} prompt tokens ({u.get('cached_tokens') or 0} cached), "
            f"{u.get('completion_tokens')} completion tokens")


def _on_document(path: str, work: Callable[[ApiClient, dict], object]) -> tuple[int | None, object]:
    """Upload `path` and follow its extraction, then `work(client, document)`: (exit code to stop with, or None;
    what work returned). Missing file → 2; unreadable document or an API / embedded-stack error → 1 (printed)."""
    file = Path(path)
    if not file.is_file():
        _err(f"error: {path}: no such file")
        return 2, None
    try:
        with connect() as client:
            doc = _ready_document(client, file)
            return (1, None) if doc is None else (None, work(client, doc))
    except (ApiError, StackDied) as exc:
        _err(f"error: {exc}")
        return 1, None


def run(path: str, create: Callable[[ApiClient, str], dict], max_tokens: int | None = None) -> int:
    """Upload `path`, wait for it to be ready, create the job with `create(client, document_id)`, print the result."""
    def work(client: ApiClient, doc: dict) -> dict | None:
        job = create(client, doc["id"])
        job = _follow(client, job["id"], "generate", max_tokens or job["params"].get("max_tokens"))
        if job["state"] != "done":
            _err(f"error: the job {job['state']}: {job.get('error')}")
            return None
        return client.result(job["result_id"])

    code, result = _on_document(path, work)
    if code is not None:
        return code
    if result is None:  # the job did not finish (said above)
        return 1
    print(result["text"])
    if result["citations"]:
        _err("citations: " + ", ".join(f"{c['anchor']} ({c['status']})" for c in result["citations"]))
    _err(f"usage: {_usage_line(result['usage'])}")
    if result.get("notice"):
        _err(f"notice: {result['notice']}")
    return 0


def run_questions(path: str, questions: list[str], thinking: bool, max_tokens: int | None, as_json: bool) -> int:
    """Many questions about one document: upload and extract once, submit every question at once (the document is
    prefilled once and each question costs its own tokens), then print the answers in order: text blocks, or one
    JSON object per line. Exit 1 if any question failed (the others are still printed)."""
    def work(client: ApiClient, doc: dict) -> list:
        jobs = [client.ask(doc["id"], q, thinking, max_tokens) for q in questions]
        bar, pending = Bar("answered", len(jobs), "questions"), {j["id"] for j in jobs}
        while pending:
            for job_id in sorted(pending):
                if client.job(job_id)["state"] in ("done", "failed", "cancelled"):
                    pending.discard(job_id)
            bar.update(len(jobs) - len(pending))
            if pending:
                time.sleep(0.2)
        bar.close()
        answers = []
        for q, job in zip(questions, jobs):
            job = client.job(job["id"])
            answers.append((q, job, client.result(job["result_id"]) if job["state"] == "done" else None))
        return answers

    code, answers = _on_document(path, work)
    if code is not None:
        return code
    failed = 0
    for i, (q, job, result) in enumerate(answers, 1):
        failed += result is None
        if as_json:
            print(json.dumps({"question": q, "state": job["state"], "error": job.get("error"),
                              "answer": result and result["text"], "citations": result and result["citations"],
                              "usage": result and result["usage"]}, ensure_ascii=False))
            continue
        print(f"## Q{i}: {q}\n")
        if result is None:
            print(f"(the job {job['state']}: {job.get('error')})\n")
            continue
        print(result["text"].rstrip() + "\n")
        if result["citations"]:
            print("citations: " + ", ".join(f"{c['anchor']} ({c['status']})" for c in result["citations"]) + "\n")
        _err(f"Q{i} usage: {_usage_line(result['usage'])}")
    notice = next((r.get("notice") for _, _, r in answers if r and r.get("notice")), None)
    if notice:
        _err(f"notice: {notice}")
    if failed:
        _err(f"error: {failed} of {len(answers)} questions failed")
    return 1 if failed else 0
