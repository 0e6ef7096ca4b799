"""One chat request through the engine, as API-neutral events: prefill progress, reasoning/content deltas, the end.

Both the OpenAI and the Anthropic routes are thin renderings of these events.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

from fastapi import Request

from inference.engine.sampling import SamplingParams
from inference.server.config import ServerConfig
from inference.server.errors import ClientGone, ContextTooLong, UnknownModel
from inference.server.metrics import ServerMetrics
from inference.server.reasoning import ReasoningSplitter
from inference.server.runner import EngineRunner, RequestHandle
from inference.text.tokenizer import END_THINK


@dataclass(frozen=True)
class Progress:
    done: int
    total: int


@dataclass(frozen=True)
class Delta:
    kind: str  # "reasoning" | "content"
    text: str


@dataclass(frozen=True)
class Keepalive:
    pass


@dataclass(frozen=True)
class Done:
    finish_reason: str  # "stop" | "length" | "abort"
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    reasoning_tokens: int


Event = Progress | Delta | Keepalive | Done


@dataclass
class Services:
    """What the routes share: the engine runner, server options and metrics (kept on app.state)."""

    runner: EngineRunner
    config: ServerConfig
    metrics: ServerMetrics

    def check_model(self, model: str | None) -> None:
        if model is not None and model != self.config.model_name:
            raise UnknownModel(f"model {model!r} is not served here; this server serves {self.config.model_name!r}",
                               param="model")

    def sampling(self, prompt_tokens: int, *, max_tokens: int | None, temperature: float | None,
                 top_p: float | None, stop: list[str] | str | None, seed: int | None = None,
                 ignore_eos: bool = False, thinking_budget: int | None = None) -> SamplingParams:
        """SamplingParams for a request; ContextTooLong when prompt + max_tokens exceed the window.
        thinking_budget: reasoning tokens after which `</think>` is forced (the prompt opened the thinking block)."""
        window = self.runner.max_model_len
        room = window - prompt_tokens
        if max_tokens is None:
            if room < 1:
                raise ContextTooLong(prompt_tokens, 1, window)
            max_tokens = min(self.config.default_max_tokens, room)
        elif max_tokens > room:
            raise ContextTooLong(prompt_tokens, max_tokens, window)
        stops = (stop,) if isinstance(stop, str) else tuple(stop or ())
        return SamplingParams(temperature=1.0 if temperature is None else temperature,
                              top_p=1.0 if top_p is None else top_p, max_tokens=max_tokens, stop=stops,
                              seed=seed, ignore_eos=ignore_eos, thinking_budget=thinking_budget,
                              end_thinking_id=END_THINK if thinking_budget is not None else None)


def request_id_of(request: Request, prefix: str) -> str:
    """The caller's X-Request-Id, or a fresh one."""
    return request.headers.get("x-request-id") or f"{prefix}-{uuid.uuid4().hex}"


class Generation:
    """A submitted request: iterate `events()`; call `abandon()` if the consumer stops early."""

    def __init__(self, services: Services, handle: RequestHandle, *, thinking: bool, api: str):
        self.services, self.handle, self.api, self.thinking = services, handle, api, thinking
        self.splitter = ReasoningSplitter(thinking=thinking)
        self.finished = False
        self.reasoning_tokens = 0
        self._first_token = True
        self._last_progress_at: float | None = None

    @property
    def request_id(self) -> str:
        return self.handle.request_id

    @classmethod
    async def start(cls, services: Services, request_id: str, prompt_token_ids: list[int], params: SamplingParams,
                    *, thinking: bool, api: str, cache_salt: str | None = None,
                    prefix_tag: str | None = None) -> Generation:
        handle = await services.runner.submit(request_id, prompt_token_ids, params, cache_salt, prefix_tag)
        return cls(services, handle, thinking=thinking, api=api)

    def abandon(self) -> None:
        """The consumer went away (disconnect, cancelled task): abort the request and free its blocks."""
        if not self.finished:
            self.finished = True
            self.services.runner.abort_soon(self.request_id)

    async def events(self) -> AsyncIterator[Event]:
        cfg = self.services.config
        while not self.finished:
            item = await self.handle.next(cfg.keepalive_s)
            if item is None:
                yield Keepalive()
            elif isinstance(item, BaseException):
                self.finished = True
                raise item
            elif not hasattr(item, "finished"):  # a RequestProgress
                now = time.monotonic()
                if self._last_progress_at is None or now - self._last_progress_at >= cfg.progress_interval_s:
                    self._last_progress_at = now
                    yield Progress(item.prefill_tokens_done, item.prefill_tokens_total)
            else:
                for event in self._output(item):
                    yield event

    def _output(self, out) -> list[Event]:
        if out.new_token_ids and self._first_token:
            self._first_token = False
            self.services.metrics.ttft.observe(time.monotonic() - self.handle.submitted_at)
        if self.splitter.in_reasoning:
            self.reasoning_tokens += len(out.new_token_ids)
        events: list[Event] = [Delta(k, t) for k, t in self.splitter.feed(out.new_text)]
        if out.finished:
            self.finished = True
            events += [Delta(k, t) for k, t in self.splitter.flush()]
            reason = out.finish_reason or "stop"
            self.services.metrics.requests.labels(self.api, reason).inc()
            events.append(Done(reason, out.prompt_tokens, out.completion_tokens, out.cached_tokens,
                               self.reasoning_tokens))
        return events


async def collect(gen: Generation, request: Request) -> tuple[str | None, str, Done]:
    """Run a non-streaming request to the end: (reasoning, content, done); a client that hangs up aborts it."""
    reasoning: list[str] = []
    content: list[str] = []
    done: list[Done] = []

    async def consume() -> None:
        async for event in gen.events():
            if isinstance(event, Delta):
                (reasoning if event.kind == "reasoning" else content).append(event.text)
            elif isinstance(event, Done):
                done.append(event)

    task = asyncio.ensure_future(consume())
    try:
        while not task.done():
            await asyncio.wait({task}, timeout=0.5)
            if not task.done() and await request.is_disconnected():
                gen.abandon()
                raise ClientGone(f"the client closed the connection; request {gen.request_id} was aborted")
        await task
    finally:
        if not task.done():
            task.cancel()
        gen.abandon()
    return ("".join(reasoning) if gen.thinking else None), "".join(content), done[0]
