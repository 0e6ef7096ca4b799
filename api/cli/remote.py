"""The command line's HTTP client for a wholedoc deployment: upload, jobs (followed over SSE), results."""

import json
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx

from pipeline.client.stream import sse_lines

CHUNK = 1 << 20


class ApiError(RuntimeError):
    """The API answered with an error; the message is its `detail`."""

    def __init__(self, status: int, error: str, detail: str):
        super().__init__(f"{detail} (HTTP {status} {error})")
        self.status, self.error = status, error


def retry_after(r: httpx.Response) -> float | None:
    """Seconds a 429 asks us to wait (Retry-After in seconds), or None."""
    try:
        return max(0.0, float(r.headers["retry-after"]))
    except (KeyError, ValueError):
        return None


class ApiClient:
    """max_wait: a 429 whose Retry-After is at most this many seconds is waited out and the request sent again
    (rate limits); a longer one (the active-jobs cap, the daily budget) is raised at once with its message."""

    def __init__(self, base_url: str, key: str, timeout: float = 60, max_wait: float = 30, max_retries: int = 8,
                 sleep: Callable[[float], None] = time.sleep):
        self.http = httpx.Client(base_url=base_url.rstrip("/"), headers={"Authorization": f"Bearer {key}"},
                                 timeout=httpx.Timeout(timeout, read=None))
        self.max_wait, self.max_retries, self.sleep = max_wait, max_retries, sleep
        self.waited = 0.0  # seconds spent waiting out 429s

    def _waited_out(self, r: httpx.Response) -> bool:
        """True after sleeping through a short 429's Retry-After (the caller sends again); False to keep r."""
        wait = retry_after(r) if r.status_code == 429 else None
        if wait is None or wait > self.max_wait:
            return False
        self.sleep(wait)
        self.waited += wait
        return True

    def _send(self, method: str, url: str, **kw) -> httpx.Response:
        """One request; a short 429 is waited out and a dropped connection tried once more. A POST carries one
        Idempotency-Key for all its tries, so a try whose answer was lost can never create a second object."""
        if method == "POST":
            kw["headers"] = {"Idempotency-Key": uuid.uuid4().hex, **kw.get("headers", {})}
        dropped = False
        for _ in range(self.max_retries):
            try:
                r = self.http.request(method, url, **kw)
            except httpx.TransportError:
                if dropped:
                    raise
                dropped = True
                continue
            if not self._waited_out(r):
                return r
        return self.http.request(method, url, **kw)

    def close(self) -> None:
        self.http.close()

    def _check(self, r: httpx.Response) -> dict:
        if r.status_code >= 400:
            try:
                body = r.json()
                raise ApiError(r.status_code, body.get("error", "error"), body.get("detail", r.text))
            except (ValueError, AttributeError):
                raise ApiError(r.status_code, "error", r.text[:500]) from None
        return r.json() if r.content else {}

    def upload(self, path: Path, on_bytes: Callable[[int], None] | None = None) -> dict:
        """Stream the file to POST /v1/documents; `on_bytes(sent)` follows the upload."""
        def body() -> Iterator[bytes]:
            sent = 0
            with path.open("rb") as f:
                while chunk := f.read(CHUNK):
                    sent += len(chunk)
                    if on_bytes:
                        on_bytes(sent)
                    yield chunk

        r = self.http.post("/v1/documents", params={"filename": path.name}, content=body(),
                           headers={"Content-Type": "application/octet-stream", "Idempotency-Key": uuid.uuid4().hex})
        return self._check(r)

    def summarize(self, document_id: str, style: str = "brief", thinking: bool = False,
                  max_tokens: int | None = None, over_window: str = "refuse") -> dict:
        return self._check(self._send("POST", f"/v1/documents/{document_id}/summaries",
                                      json={"style": style, "thinking": thinking, "max_tokens": max_tokens,
                                            "over_window": over_window}))

    def ask(self, document_id: str, question: str, thinking: bool = False, max_tokens: int | None = None,
            over_window: str = "refuse") -> dict:
        return self._check(self._send("POST", f"/v1/documents/{document_id}/questions",
                                      json={"question": question, "thinking": thinking, "max_tokens": max_tokens,
                                            "over_window": over_window}))

    def job(self, job_id: str) -> dict:
        return self._check(self._send("GET", f"/v1/jobs/{job_id}"))

    def document(self, document_id: str) -> dict:
        return self._check(self._send("GET", f"/v1/documents/{document_id}"))

    def result(self, result_id: str) -> dict:
        return self._check(self._send("GET", f"/v1/results/{result_id}"))

    def list(self, what: str, limit: int = 20, after: str | None = None) -> dict:
        """One page (newest first) of `documents` or `jobs`: {data, has_more, last_id}."""
        params = {"limit": limit} | ({"after": after} if after else {})
        return self._check(self._send("GET", f"/v1/{what}", params=params))

    def cancel(self, job_id: str) -> dict:
        return self._check(self._send("POST", f"/v1/jobs/{job_id}/cancel"))

    def follow(self, job_id: str, on_event: Callable[[dict], None], stall_seconds: float = 300) -> dict:
        """Follow the job's SSE stream until it ends; returns the final job.

        A job still queued after `stall_seconds` without any event raises ApiError (no worker is taking it).
        """
        refusals = 0
        while True:
            try:
                with self.http.stream("GET", f"/v1/jobs/{job_id}/events",
                                      timeout=httpx.Timeout(60, read=stall_seconds)) as r:
                    if refusals < self.max_retries and self._waited_out(r):
                        refusals += 1
                        continue
                    if r.status_code >= 400:
                        r.read()
                        self._check(r)
                    event = None
                    for line in sse_lines(r.iter_text()):  # not iter_lines: see sse_lines
                        if line.startswith("event: "):
                            event = line[7:]
                        elif line.startswith("data: ") and event == "progress":
                            on_event(json.loads(line[6:]))
                        elif event == "end":
                            return self.job(job_id)
                return self.job(job_id)
            except httpx.ReadTimeout:
                job = self.job(job_id)
                if job["state"] == "queued":
                    raise ApiError(504, "stalled", f"no worker has taken job {job_id} in {stall_seconds:.0f} s "
                                   "(is a worker running on its queue? see its log)") from None
