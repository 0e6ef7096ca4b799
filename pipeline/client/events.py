"""What the client hands back: the finished completion, progress reports, and model facts."""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.client.usage import Usage


@dataclass(frozen=True)
class Completion:
    """A finished chat completion. `request_id` is the id of the attempt that succeeded (see InferenceClient.chat)."""

    content: str
    reasoning_content: str | None
    finish_reason: str | None
    usage: Usage | None
    request_id: str
    attempts: int
    model: str | None = None


@dataclass(frozen=True)
class Progress:
    """A progress report: `phase` is prefill | decode | retry; prefill counts come from wholedoc's server only."""

    phase: str
    attempt: int
    prefill_tokens_done: int | None = None
    prefill_tokens_total: int | None = None
    tokens_generated: int = 0
    retry_in: float | None = None  # phase "retry": seconds until the next attempt
    reason: str | None = None  # phase "retry": why the last attempt failed


@dataclass(frozen=True)
class ModelInfo:
    """An entry of GET /models; `max_model_len` is wholedoc's (and vLLM's) window field, None elsewhere."""

    id: str
    max_model_len: int | None = None


@dataclass(frozen=True)
class CacheProbe:
    """POST /cache/probe: how much of a prompt the server's prefix cache already holds."""

    prompt_tokens: int
    cached_tokens: int
    tokens_to_compute: int


@dataclass(frozen=True)
class RequestStatus:
    """GET /requests/{id} on wholedoc's server: where a running request is."""

    id: str
    state: str
    prefill_tokens_done: int | None = None
    prefill_tokens_total: int | None = None
    tokens_generated: int | None = None
    cached_tokens: int | None = None
