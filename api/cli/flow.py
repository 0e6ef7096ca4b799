"""What `wholedoc summarize` and `wholedoc ask` share: a document uploaded and extracted on a deployment, then one
job followed to its result, or many questions submitted at once and every answer printed in order.

The parts live in their own modules: the deployment (api/cli/deployment.py, with the embedded one's key in
api/cli/credentials.py), following jobs (api/cli/follow.py) and printing (api/cli/output.py).
"""

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from api.cli.deployment import StackDied, connect
from api.cli.follow import follow_job, ready_document, wait_for_jobs
from api.cli.output import err, print_answers, print_result
from api.cli.remote import ApiClient, ApiError
from api.cli.stdin import path_or_stdin

DOCUMENT_ID = re.compile(r"[0-9a-f]{32}")  # the API's document ids


def on_deployment(work: Callable[[ApiClient], int | None]) -> int | None:
    """`work(client)` on the deployment (or an embedded one) and its exit code; an unreachable API, a refused key,
    an API error or a dead embedded stack → 1 with one line saying what is wrong (no traceback); Ctrl-C → 130."""
    try:
        with connect() as client:
            return work(client)
    except KeyboardInterrupt:
        err("interrupted")
        return 130
    except ApiError as exc:
        hint = " (check WHOLEDOC_API_KEY, or make one: wholedoc admin create-key TENANT)" if exc.status == 401 else ""
        err(f"error: {exc}{hint}")
    except StackDied as exc:
        err(f"error: {exc}")
    except httpx.TransportError as exc:
        err(f"error: cannot reach the wholedoc API ({type(exc).__name__}: {exc}); is it running at WHOLEDOC_API_URL?")
    return 1


def _on_document(target: str, work: Callable[[ApiClient, dict], object]) -> tuple[int | None, object]:
    """`target` is a file to upload (extraction followed; the same bytes again reuse the document on the API) or the
    id of a document already there; then `work(client, document)`: (exit code to stop with, or None; what work
    returned). A missing file, an unknown id or a document that is not ready → 1; otherwise as on_deployment."""
    if target == "-":  # standard input, spooled to a file
        with path_or_stdin(target) as spooled:
            return _on_document(spooled, work)
    file = Path(target)
    by_id = not file.is_file() and DOCUMENT_ID.fullmatch(target) is not None
    if not file.is_file() and not by_id:
        err(f"error: {target}: no such file (give the path of a PDF or a codebase archive, or a document id)")
        return 1, None
    done = []

    def resolve_then_work(client: ApiClient) -> int | None:
        doc = client.document(target) if by_id else ready_document(client, file)
        if doc is None:
            return 1
        if doc["status"] != "ready":
            err(f"error: document {doc['id']} is {doc['status']}" + (f": {doc['error']}" if doc.get("error") else ""))
            return 1
        done.append(work(client, doc))
        return None

    code = on_deployment(resolve_then_work)
    return code, done[0] if done else None


@contextmanager
def cancelled_on_interrupt(client: ApiClient, jobs: list) -> Iterator[None]:
    """Ctrl-C while following `jobs` (the API's job objects; the list may still be filling) cancels them on the
    deployment, then goes on interrupting: the work stops where it runs, not only in this terminal."""
    try:
        yield
    except KeyboardInterrupt:
        for job_id in [job["id"] for job in jobs]:
            try:
                client.cancel(job_id)
                err(f"cancelled job {job_id}")
            except (ApiError, httpx.TransportError) as exc:  # already ended, or the API is gone
                err(f"could not cancel job {job_id}: {exc}")
        raise


def run(path: str, create: Callable[[ApiClient, str], dict], max_tokens: int | None = None, as_json: bool = False,
        output: str | None = None) -> int:
    """Upload `path`, wait for it to be ready, create the job with `create(client, document_id)`, print the result
    (as one JSON object with as_json; into the file `output` if given)."""
    def work(client: ApiClient, doc: dict) -> dict | None:
        job = create(client, doc["id"])
        with cancelled_on_interrupt(client, [job]):
            job = follow_job(client, job["id"], "generate", max_tokens or job["params"].get("max_tokens"))
        if job["state"] != "done":
            err(f"error: the job {job['state']}: {job.get('error')}")
            return None
        return client.result(job["result_id"])

    code, result = _on_document(path, work)
    if code is not None:
        return code
    if result is None:  # the job did not finish (said above)
        return 1
    print_result(result, as_json, output)
    return 0


def run_questions(path: str, questions: list[str], thinking: bool, max_tokens: int | None, as_json: bool,
                  over_window: str = "refuse") -> int:
    """Many questions about one document: upload and extract once, submit every question at once (the document is
    prefilled once and each question costs its own tokens), then print the answers in order: text blocks, or one
    JSON object per line. Exit 1 if any question failed (the others are still printed)."""
    def work(client: ApiClient, doc: dict) -> list:
        jobs = []
        with cancelled_on_interrupt(client, jobs):
            jobs += [client.ask(doc["id"], q, thinking, max_tokens, over_window) for q in questions]
            wait_for_jobs(client, jobs)
        answers = []
        for q, job in zip(questions, jobs):
            job = client.job(job["id"])
            answers.append((q, job, client.result(job["result_id"]) if job["state"] == "done" else None))
        return answers

    code, answers = _on_document(path, work)
    if code is not None:
        return code
    return 1 if print_answers(answers, as_json) else 0
