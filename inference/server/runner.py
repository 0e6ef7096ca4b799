"""The engine thread: owns the (not thread-safe) Engine, takes commands from a queue, steps, and hands each
request's outputs and prefill progress to the asyncio side through that request's own queue."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import queue
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from inference.server.errors import EngineFailed

log = logging.getLogger("inference.server")
Item = Any  # RequestOutput | RequestProgress | BaseException


class RequestHandle:
    """One running request as the HTTP side sees it: a queue of outputs, progress snapshots and errors."""

    def __init__(self, request_id: str, prompt_tokens: int):
        self.request_id, self.prompt_tokens = request_id, prompt_tokens
        self.loop = asyncio.get_running_loop()
        self.queue: asyncio.Queue[Item] = asyncio.Queue()
        self.submitted_at = time.monotonic()
        self.started = False  # engine thread: a token came (no more progress pushes)
        self.last_progress: Any = None  # engine thread: the last RequestProgress seen

    def put(self, item: Item) -> None:
        """Thread-safe: deliver to the asyncio side (dropped if the loop is gone)."""
        try:
            self.loop.call_soon_threadsafe(self.queue.put_nowait, item)
        except RuntimeError:
            pass

    async def next(self, timeout: float) -> Item | None:
        """The next item, or None after `timeout` seconds of silence."""
        try:
            return await asyncio.wait_for(self.queue.get(), timeout)
        except TimeoutError:
            return None


@dataclass
class StatsSnapshot:
    """The engine's stats plus token rates, refreshed by the engine thread (read from anywhere)."""

    stats: Any = None
    prefill_tokens_per_s: float = 0.0
    decode_tokens_per_s: float = 0.0
    at: float = field(default_factory=time.monotonic)


class EngineRunner:
    """Runs `engine` in one background thread; every engine call happens there, between steps."""

    STATS_EVERY_S = 0.5
    RECENT_LIMIT = 4096  # finished/aborted requests GET /v1/requests/{id} still knows

    def __init__(self, engine):
        self.engine = engine
        self.tokenizer = engine.tokenizer
        self.max_model_len: int = engine.max_model_len
        self.failure: BaseException | None = None
        self.snapshot = StatsSnapshot()
        self._inbox: queue.SimpleQueue = queue.SimpleQueue()
        self._handles: dict[str, RequestHandle] = {}
        self._recent: OrderedDict[str, Any] = OrderedDict()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="engine", daemon=True)

    ##### Public API (asyncio side) #####

    def start(self) -> None:
        self._refresh_stats(force=True)
        self._thread.start()

    def close(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._thread.join(timeout)

    @property
    def healthy(self) -> bool:
        executor = getattr(self.engine, "executor", None)  # inference.parallel: every rank answers (docs/parallel.md)
        if executor is not None and executor.failure is not None and self.failure is None:
            self.failure = RuntimeError(f"a parallel rank failed: {executor.failure}")
        return self.failure is None and self._thread.is_alive()

    async def call(self, fn: Callable, *args) -> Any:
        """Run fn(*args) on the engine thread, between steps, and return its result (or raise its error)."""
        if not self.healthy:
            raise EngineFailed(f"the engine is not running: {self.failure!r}")
        fut: concurrent.futures.Future = concurrent.futures.Future()
        self._inbox.put((fut, fn, args))
        return await asyncio.wrap_future(fut)

    async def submit(self, request_id: str, prompt_token_ids: list[int], params,
                     cache_salt: str | None = None, prefix_tag: str | None = None) -> RequestHandle:
        """Add a request; engine refusals (PromptTooLong, QueueFull, DuplicateRequest) raise here, before any reply."""
        handle = RequestHandle(request_id, len(prompt_token_ids))
        await self.call(self._add, handle, prompt_token_ids, params, cache_salt, prefix_tag)
        return handle

    async def abort(self, request_id: str) -> Any:
        """Abort a request: its progress as it stood (state "aborted"), or None if the engine never knew it."""
        return await self.call(self._abort, request_id)

    def abort_soon(self, request_id: str) -> None:
        """Fire-and-forget abort (a client went away); safe from any thread or a cancelled task."""
        self._inbox.put((None, self._abort, (request_id,)))

    async def progress(self, request_id: str) -> Any:
        """RequestProgress of a live or recently finished request; None if unknown."""
        return await self.call(self._progress, request_id)

    async def probe(self, token_ids: list[int], cache_salt: str | None = None) -> int:
        cached = await self.call(self.engine.probe, token_ids, cache_salt)
        hooks = getattr(self.engine, "snapshots", None)
        if hooks is None:  # no prefix store
            return cached
        try:  # what a restore would give (docs/prefix-store.md); the store is read off the engine thread
            return await asyncio.wait_for(asyncio.to_thread(hooks.probe_tokens, token_ids, cache_salt, cached),
                                          min(5.0, hooks.store.config.restore_timeout_s))
        except TimeoutError:
            return cached

    @property
    def prefix_store(self) -> Any:
        """The engine's inference.prefix_store.PrefixStore, or None."""
        hooks = getattr(self.engine, "snapshots", None)
        return hooks.store if hooks is not None else None

    ##### Engine thread #####

    def _add(self, handle: RequestHandle, token_ids: list[int], params, cache_salt: str | None,
             prefix_tag: str | None = None) -> None:
        extra = {"prefix_tag": prefix_tag} if prefix_tag is not None else {}
        self.engine.add_request(handle.request_id, token_ids, params, cache_salt=cache_salt, **extra)
        self._recent.pop(handle.request_id, None)
        self._handles[handle.request_id] = handle
        p = self.engine.progress(handle.request_id)
        if p is not None:
            handle.last_progress = p
            handle.put(p)

    def _abort(self, request_id: str) -> Any:
        before = self._progress(request_id)
        known = self.engine.abort(request_id)
        handle = self._handles.pop(request_id, None)
        if not known and handle is None:
            return before
        snap = before
        if before is not None and before.state not in ("finished", "aborted"):
            snap = FinishedProgress(request_id, "aborted", before.prefill_tokens_done, before.prefill_tokens_total,
                                    before.tokens_generated, before.cached_tokens)
        if snap is not None:
            self._remember(snap)
        if handle is not None:
            handle.put(_aborted_output(handle, snap))
        return snap

    def _progress(self, request_id: str) -> Any:
        p = self.engine.progress(request_id)
        return p if p is not None else self._recent.get(request_id)

    def _remember(self, progress: Any) -> None:
        self._recent[progress.request_id] = progress
        self._recent.move_to_end(progress.request_id)
        while len(self._recent) > self.RECENT_LIMIT:
            self._recent.popitem(last=False)

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                self._drain(block=not self.engine.has_unfinished())
                if self.engine.has_unfinished():
                    self._dispatch(self.engine.step())
                    self._push_progress()
                self._refresh_stats()
        except BaseException as e:  # the engine is in an unknown state: fail everything, stay down
            log.exception("engine thread failed")
            self._fail(e)

    def _drain(self, *, block: bool) -> None:
        try:
            cmd = self._inbox.get(timeout=0.25) if block else self._inbox.get_nowait()
        except queue.Empty:
            return
        while True:
            fut, fn, args = cmd
            try:
                result = fn(*args)
            except Exception as e:
                if fut is None:
                    log.warning("engine command %s failed: %r", getattr(fn, "__name__", fn), e)
                else:
                    fut.set_exception(e)
            else:
                if fut is not None:
                    fut.set_result(result)
            try:
                cmd = self._inbox.get_nowait()
            except queue.Empty:
                return

    def _dispatch(self, outputs) -> None:
        for out in outputs:
            handle = self._handles.get(out.request_id)
            if handle is None:
                continue  # aborted meanwhile
            if out.new_token_ids:
                handle.started = True
            handle.put(out)
            if out.finished:
                del self._handles[out.request_id]
                self._remember(_final_progress(handle, out, self.engine.progress(out.request_id)))

    def _push_progress(self) -> None:
        for handle in self._handles.values():
            if handle.started:
                continue
            p = self.engine.progress(handle.request_id)
            last = handle.last_progress
            if p is not None and (last is None or (p.prefill_tokens_done, p.state) != (
                    last.prefill_tokens_done, last.state)):
                handle.last_progress = p
                handle.put(p)

    def _refresh_stats(self, *, force: bool = False) -> None:
        now = time.monotonic()
        prev = self.snapshot
        if not force and now - prev.at < self.STATS_EVERY_S:
            return
        stats = self.engine.stats()
        snap = StatsSnapshot(stats, at=now)
        if prev.stats is not None and now > prev.at:
            dt = now - prev.at
            snap.prefill_tokens_per_s = (stats.prefill_tokens - prev.stats.prefill_tokens) / dt
            snap.decode_tokens_per_s = (stats.decode_tokens - prev.stats.decode_tokens) / dt
        self.snapshot = snap

    def _fail(self, error: BaseException) -> None:
        self.failure = error
        failed = EngineFailed(f"the engine failed: {type(error).__name__}: {error}")
        for handle in self._handles.values():
            handle.put(failed)
        self._handles.clear()
        while True:
            try:
                fut, _, _ = self._inbox.get_nowait()
            except queue.Empty:
                return
            if fut is not None:
                fut.set_exception(failed)


@dataclass
class FinishedProgress:
    """A finished or aborted request as GET /v1/requests/{id} reports it (RequestProgress's fields)."""

    request_id: str
    state: str
    prefill_tokens_done: int
    prefill_tokens_total: int
    tokens_generated: int
    cached_tokens: int


@dataclass
class AbortedOutput:
    """The last output of a request aborted by id or disconnect (RequestOutput's fields, finish_reason "abort")."""

    request_id: str
    prompt_tokens: int
    cached_tokens: int
    completion_tokens: int
    new_token_ids: list[int] = field(default_factory=list)
    new_text: str = ""
    finished: bool = True
    finish_reason: str = "abort"


def _final_progress(handle: RequestHandle, out, engine_progress) -> Any:
    """What GET /v1/requests/{id} says once a request is done."""
    if engine_progress is not None and engine_progress.state in ("finished", "aborted"):
        return engine_progress
    last = handle.last_progress
    total = last.prefill_tokens_total if last is not None else out.prompt_tokens - out.cached_tokens
    return FinishedProgress(out.request_id, "aborted" if out.finish_reason == "abort" else "finished", total, total,
                            out.completion_tokens, out.cached_tokens)


def _aborted_output(handle: RequestHandle, snap) -> AbortedOutput:
    return AbortedOutput(handle.request_id, handle.prompt_tokens, snap.cached_tokens if snap else 0,
                         snap.tokens_generated if snap else 0)
