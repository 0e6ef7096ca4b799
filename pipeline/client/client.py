"""OpenAI-compatible inference client (httpx): streaming chat with retries, cancellation and progress, plus
wholedoc's optional endpoints (request status and abort, cache probe, tokenize), which other servers lack (404).

Retry rule: a failed attempt (429, 5xx, timeout, connection error, dropped stream) is retried from scratch only
while no text has been handed to the caller's `on_delta`; the prefix cache makes the repeat cheap. Once text was
delivered, a broken stream raises StreamInterrupted with the partial text — we never splice two generations.
"""

from __future__ import annotations

import json
import logging
import random
import re
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import quote

import httpx

from pipeline.client import watchdog as wd
from pipeline.client.backoff import backoff_delay, parse_retry_after
from pipeline.client.config import ClientConfig
from pipeline.client.events import CacheProbe, Completion, ModelInfo, Progress, RequestStatus
from pipeline.client.stream import StreamError, StreamState, read_sse, sse_lines
from pipeline.client.usage import parse_usage
from pipeline.errors import (
    ContextWindowExceeded,
    EndpointUnavailable,
    RateLimited,
    RequestCancelled,
    RequestRejected,
    StreamInterrupted,
)

log = logging.getLogger(__name__)
RETRY_STATUSES = {408, 500, 502, 503, 504}
CONTEXT_ERROR = re.compile(r"context (length|window)|too long|max_model_len|maximum .*length", re.IGNORECASE)
WINDOW_IN_MESSAGE = re.compile(r"context length is (\d+)")  # vLLM: "maximum context length is N tokens"
REQUESTED_IN_MESSAGE = re.compile(r"requested (\d+) tokens")
ABSENT = {404, 405, 501}  # an optional endpoint this server does not have


def document_prefix_tag(tenant_id: str, document_id: str) -> str:
    """The `prefix_tag` of a document's requests: deleting the document deletes the snapshots tagged with it."""
    return f"{tenant_id}/{document_id}"


class _Retryable(Exception):
    def __init__(self, message: str, *, rate_limited: bool = False, status: int | None = None,
                 retry_after: float | None = None):
        super().__init__(message)
        self.rate_limited, self.status, self.retry_after = rate_limited, status, retry_after


class InferenceClient:
    """One endpoint, one model. Thread-safe: each chat call uses its own connection."""

    def __init__(self, config: ClientConfig, *, rng: random.Random | None = None):
        self.config = config
        self._rng = rng  # jitter source; tests pass a seeded one
        read = max(config.first_token_timeout, config.idle_timeout) + 5  # backstop; the watchdog enforces phases
        self._http = httpx.Client(
            timeout=httpx.Timeout(read, connect=config.connect_timeout),
            # NOTE: no keep-alive: every request opens its own connection, so the watchdog sees its socket
            limits=httpx.Limits(max_keepalive_connections=0),
            headers={"Authorization": f"Bearer {config.api_key}"} if config.api_key else {},
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> InferenceClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    ##### Chat #####

    def chat(
        self,
        messages: Sequence[dict],
        *,
        max_tokens: int,
        thinking: bool | None = None,
        thinking_budget: int | None = None,
        reasoning_effort: str | None = None,
        stream: bool = True,
        temperature: float | None = None,
        request_id: str | None = None,
        cancel: threading.Event | None = None,
        on_progress: Callable[[Progress], None] | None = None,
        on_delta: Callable[[str, str], None] | None = None,
        cache_salt: str | None = None,
        prefix_tag: str | None = None,
        extra_body: dict | None = None,
    ) -> Completion:
        """Run one chat completion to the end and return it.

        Args: `thinking` None leaves the server default; `thinking_budget` (with thinking on) caps the reasoning
        tokens: wholedoc's server then closes the thinking block so the answer keeps its room; `cancel` aborts at
        once (RequestCancelled) and sends DELETE /requests/{id}; `on_delta(kind, text)` gets each
        "reasoning"/"content" piece as it streams; `request_id` is sent as X-Request-Id (retries use `<id>.2`,
        `<id>.3`, …); `cache_salt` (vLLM's and wholedoc's field) keeps the request in the prefix cache of that
        salt only, e.g. one per tenant; `prefix_tag` (wholedoc's server) labels the prefix snapshots the request
        leaves in the server's prefix store, so `delete_prefixes(tag)` removes them (document_prefix_tag).
        Raises: RateLimited, EndpointUnavailable (after retries), ContextWindowExceeded, RequestRejected,
        RequestCancelled, StreamInterrupted.
        """
        body: dict[str, Any] = {"model": self.config.model, "messages": list(messages), "max_tokens": max_tokens,
                                "stream": stream}
        if stream:
            body["stream_options"] = {"include_usage": True}
        extended = self.config.flavor == "extended"  # DeepSeek's API takes neither a budget nor a salt
        if thinking is not None:
            body["thinking"] = {"type": "enabled" if thinking else "disabled"}
            if thinking and thinking_budget is not None and extended:
                body["thinking"]["budget_tokens"] = thinking_budget
        if reasoning_effort is not None:
            body["reasoning_effort"] = reasoning_effort
        if temperature is not None:
            body["temperature"] = temperature
        if cache_salt is not None and extended:
            body["cache_salt"] = cache_salt
        if prefix_tag is not None and extended:
            body["prefix_tag"] = prefix_tag
        body.update(extra_body or {})
        rid = request_id or uuid.uuid4().hex
        attempt = 0
        while True:
            attempt += 1
            attempt_id = rid if attempt == 1 else f"{rid}.{attempt}"
            if cancel is not None and cancel.is_set():
                raise RequestCancelled(f"request {rid} was cancelled before attempt {attempt}")
            try:
                return self._attempt(body, attempt_id, attempt, cancel, on_progress, on_delta)
            except _Retryable as e:
                delay = self._retry_delay(e, attempt)
                if on_progress is not None:
                    on_progress(Progress("retry", attempt, retry_in=delay, reason=str(e)))
                if cancel is None:
                    time.sleep(delay)
                elif cancel.wait(delay):
                    raise RequestCancelled(f"request {rid} was cancelled while waiting to retry") from None

    def _retry_delay(self, e: _Retryable, attempt: int) -> float:
        """Seconds before the next attempt, or the final typed error when retries are spent."""
        cfg = self.config
        if e.rate_limited and e.retry_after is not None and e.retry_after > cfg.retry_after_max:
            raise RateLimited(f"rate limited; the server asks to wait {e.retry_after:.0f} s, over the "
                              f"{cfg.retry_after_max:.0f} s we wait in place", retry_after=e.retry_after,
                              attempts=attempt) from None
        if attempt > cfg.max_retries:
            if e.rate_limited:
                raise RateLimited(f"still rate limited after {attempt} attempts: {e}", retry_after=e.retry_after,
                                  attempts=attempt) from None
            raise EndpointUnavailable(f"{cfg.base_url} failed {attempt} attempts; last: {e}", status=e.status,
                                      attempts=attempt) from None
        if e.retry_after is not None:
            return min(e.retry_after, cfg.retry_after_max)
        return backoff_delay(cfg, attempt, self._rng)

    def _attempt(self, body, attempt_id, attempt, cancel, on_progress, on_delta) -> Completion:
        cfg = self.config
        state = StreamState()
        stopped = lambda: cancel is not None and cancel.is_set()
        dog = wd.Watchdog(cancel, cfg.first_token_timeout, cfg.idle_timeout)
        finished = threading.Event()
        if not body["stream"] and on_progress is not None:
            threading.Thread(target=self._poll_status, args=(attempt_id, attempt, on_progress, finished),
                             daemon=True).start()
        log.info("inference request %s (attempt %d) to %s", attempt_id, attempt, cfg.url("chat/completions"),
                 extra={"request_id": attempt_id})
        try:
            with dog, self._http.stream("POST", cfg.url("chat/completions"), json=body,
                                        headers={"X-Request-Id": attempt_id}, extensions={"trace": dog.trace}) as r:
                if r.status_code != 200:
                    r.read()
                    self._raise_for_status(r)
                if body["stream"]:
                    read_sse(sse_lines(r.iter_text()), state, attempt=attempt, on_activity=dog.activity,
                             on_progress=on_progress, on_delta=on_delta, should_stop=stopped)
                else:
                    _from_json(r.read(), state)
        except (httpx.TransportError, StreamError) as e:
            reason = dog.reason or f"{type(e).__name__}: {e}"
            return self._fail(attempt_id, state, reason, cancel)
        finally:
            finished.set()
        if stopped() or not state.complete:
            return self._fail(attempt_id, state, dog.reason or "the stream ended before [DONE]", cancel)
        return Completion("".join(state.content), "".join(state.reasoning) if state.reasoning else None,
                          state.finish_reason, state.usage, attempt_id, attempt, state.model)

    def _poll_status(self, attempt_id: str, attempt: int, on_progress: Callable[[Progress], None],
                     finished: threading.Event) -> None:
        """Progress for a non-streaming call, from wholedoc's GET /requests/{id}; stops at once on other servers."""
        while not finished.wait(self.config.status_poll_interval):
            try:
                status = self.request_status(attempt_id)
            except (EndpointUnavailable, RequestRejected):
                return
            if status is None:
                return  # no such endpoint: nothing to poll
            if not finished.is_set():
                on_progress(Progress("prefill" if not status.tokens_generated else "decode", attempt,
                                     status.prefill_tokens_done, status.prefill_tokens_total,
                                     status.tokens_generated or 0))

    def _fail(self, attempt_id: str, state: StreamState, reason: str, cancel: threading.Event | None):
        """An attempt broke: abort it server-side, then raise cancelled / interrupted / retryable."""
        self.cancel_request(attempt_id, quiet=True)
        if cancel is not None and cancel.is_set():
            raise RequestCancelled(f"request {attempt_id} was cancelled")
        if state.delivered:
            raise StreamInterrupted(f"the stream broke after text was delivered ({reason})",
                                    partial="".join(state.content))
        raise _Retryable(reason)

    def _raise_for_status(self, r: httpx.Response) -> None:
        message = _error_message(r)
        if r.status_code == 429:
            raise _Retryable(f"429 {message}", rate_limited=True, status=429,
                             retry_after=parse_retry_after(r.headers.get("retry-after")))
        if r.status_code in RETRY_STATUSES:
            raise _Retryable(f"{r.status_code} {message}", status=r.status_code,
                             retry_after=parse_retry_after(r.headers.get("retry-after")))
        if r.status_code == 400 and (CONTEXT_ERROR.search(message) or "context_length_exceeded" in r.text):
            window, requested = WINDOW_IN_MESSAGE.search(message), REQUESTED_IN_MESSAGE.search(message)
            raise ContextWindowExceeded(f"the endpoint refused the prompt as too long: {message}",
                                        window_tokens=int(window.group(1)) if window else None,
                                        requested_tokens=int(requested.group(1)) if requested else None)
        raise RequestRejected(f"{r.status_code} from {self.config.base_url}: {message}", status=r.status_code)

    ##### wholedoc's optional endpoints (None where the server lacks them) #####

    def models(self) -> list[ModelInfo]:
        """GET /models."""
        data = self._control("GET", "models") or {}
        return [ModelInfo(str(m["id"]), m.get("max_model_len")) for m in data.get("data", []) if "id" in m]

    def max_model_len(self) -> int | None:
        """The configured model's window, when the server says (wholedoc, vLLM); None otherwise."""
        return next((m.max_model_len for m in self.models() if m.id == self.config.model), None)

    def probe_cache(self, messages: Sequence[dict] | None = None, *, prompt_token_ids: Sequence[int] | None = None,
                    cache_salt: str | None = None) -> CacheProbe | None:
        """POST /cache/probe: prompt tokens, how many are cached, how many would be computed (for `cache_salt`)."""
        body: dict[str, Any] = {"model": self.config.model}
        if cache_salt is not None:
            body["cache_salt"] = cache_salt
        body.update({"messages": list(messages)} if messages is not None else
                    {"prompt_token_ids": list(prompt_token_ids or ())})
        data = self._control("POST", "cache/probe", body)
        if data is None:
            return None
        return CacheProbe(int(data["prompt_tokens"]), int(data["cached_tokens"]), int(data["tokens_to_compute"]))

    def delete_prefixes(self, tag: str) -> int | None:
        """DELETE /prefixes?tag=…: drop the stored prefix snapshots tagged `tag` (a deleted document's); how many,
        or None when the server has no such endpoint or no prefix store."""
        data = self._control("DELETE", f"prefixes?tag={quote(tag, safe='')}")
        if data is None or not data.get("prefix_store", True):
            return None
        return int(data.get("deleted", 0))

    def tokenize(self, messages: Sequence[dict] | None = None, *, prompt: str | None = None) -> int | None:
        """POST /tokenize: the server's own token count for messages (chat template applied) or a raw prompt."""
        body: dict[str, Any] = {"model": self.config.model}
        body.update({"messages": list(messages)} if messages is not None else {"prompt": prompt or ""})
        data = self._control("POST", "tokenize", body)
        return None if data is None else int(data["count"])

    def request_status(self, request_id: str) -> RequestStatus | None:
        """GET /requests/{id}; None when the server has no such endpoint or no such request."""
        data = self._control("GET", f"requests/{request_id}")
        if data is None:
            return None
        fields = ("prefill_tokens_done", "prefill_tokens_total", "tokens_generated", "cached_tokens")
        return RequestStatus(str(data.get("id", request_id)), str(data.get("state", "unknown")),
                             **{k: data.get(k) for k in fields})

    def cancel_request(self, request_id: str, *, quiet: bool = False) -> bool:
        """DELETE /requests/{id}: True if the server knew the request; `quiet` swallows connection errors."""
        try:
            timeout = min(self.config.control_timeout, 5.0) if quiet else None
            return self._control("DELETE", f"requests/{request_id}", timeout=timeout) is not None
        except (EndpointUnavailable, RequestRejected):
            if quiet:
                return False
            raise

    def _control(self, method: str, path: str, body: dict | None = None, timeout: float | None = None) -> dict | None:
        try:
            r = self._http.request(method, self.config.url(path), json=body,
                                   timeout=timeout or self.config.control_timeout)
        except httpx.TransportError as e:
            raise EndpointUnavailable(f"{method} {path} on {self.config.base_url}: {type(e).__name__}: {e}") from e
        if r.status_code in ABSENT:
            return None
        if r.status_code >= 500:
            raise EndpointUnavailable(f"{method} {path}: {r.status_code} {_error_message(r)}", status=r.status_code)
        if r.status_code >= 400:
            raise RequestRejected(f"{method} {path}: {r.status_code} {_error_message(r)}", status=r.status_code)
        try:
            data = r.json()
        except ValueError as e:
            raise EndpointUnavailable(f"{method} {path}: the answer is not JSON: {r.text[:200]!r}") from e
        return data if isinstance(data, dict) else {"data": data}


def _error_message(r: httpx.Response) -> str:
    try:
        err = r.json().get("error")
    except (ValueError, AttributeError):
        return r.text[:500]
    if isinstance(err, dict):
        return str(err.get("message", err))[:500]
    return str(err)[:500] if err else r.text[:500]


def _from_json(raw: bytes, state: StreamState) -> None:
    """A non-streaming response into `state`."""
    try:
        data = json.loads(raw)
        message = data["choices"][0].get("message") or {}
    except (ValueError, KeyError, IndexError, TypeError, AttributeError) as e:
        raise StreamError(f"the response is not a chat completion: {raw[:200]!r}") from e
    state.content.append(message.get("content") or "")
    reasoning = message.get("reasoning_content") or message.get("reasoning")
    if reasoning:
        state.reasoning.append(reasoning)
    state.finish_reason = data["choices"][0].get("finish_reason") or "stop"
    state.usage = parse_usage(data.get("usage"))
    state.model = data.get("model")
