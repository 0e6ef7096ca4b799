"""Reading an OpenAI Chat Completions SSE stream: data chunks, `[DONE]`, and wholedoc's progress comments."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from pipeline.client.events import Progress
from pipeline.client.usage import Usage, parse_usage

PROGRESS_COMMENT = "progress "  # `: progress {"prefill_tokens_done": N, "prefill_tokens_total": M}`


class StreamError(Exception):
    """The server sent an error object inside the stream, or a chunk that is not JSON."""


@dataclass
class StreamState:
    """What one attempt has received so far."""

    content: list[str] = field(default_factory=list)
    reasoning: list[str] = field(default_factory=list)
    finish_reason: str | None = None
    usage: Usage | None = None
    model: str | None = None
    done: bool = False  # `data: [DONE]` seen
    delivered: bool = False  # text was handed to the caller's on_delta
    chunks: int = 0  # content/reasoning chunks: the tokens-generated estimate until usage arrives

    @property
    def complete(self) -> bool:
        return self.done or self.finish_reason is not None


def sse_lines(chunks: Iterable[str]) -> Iterator[str]:
    """The lines of an SSE stream from its decoded text chunks. SSE lines end only at CRLF, CR or LF — not at the
    other breaks `str.splitlines` (and httpx's `iter_lines`) honour, such as U+0085, U+2028 or U+2029, which a
    server may write raw inside a JSON `data:` payload (`ensure_ascii=False`)."""
    buf = ""
    for chunk in chunks:
        buf += chunk
        start = 0
        while True:
            cr, lf = buf.find("\r", start), buf.find("\n", start)
            if cr == -1 and lf == -1:
                break
            if cr != -1 and (lf == -1 or cr < lf):
                if cr == len(buf) - 1:  # a CR at the end may be the first half of a CRLF: wait for more text
                    break
                end, nxt = cr, cr + 2 if buf[cr + 1] == "\n" else cr + 1
            else:
                end, nxt = lf, lf + 1
            yield buf[start:end]
            start = nxt
        buf = buf[start:]
    if buf:
        yield buf.removesuffix("\r")


def read_sse(
    lines: Iterable[str],
    state: StreamState,
    *,
    attempt: int,
    on_activity: Callable[..., None],
    on_progress: Callable[[Progress], None] | None,
    on_delta: Callable[[str, str], None] | None,
    should_stop: Callable[[], bool],
) -> None:
    """Consume SSE lines into `state` until `[DONE]`, end of stream, or `should_stop()`."""
    data: list[str] = []
    for line in lines:
        if should_stop():
            return
        if line.startswith(":"):
            on_activity(token=False)
            _comment(line[1:].strip(), attempt, on_progress)
            continue
        if line.startswith("data:"):
            data.append(line[5:].removeprefix(" "))
            continue
        if line == "" and data:  # end of one event
            payload, data = "\n".join(data), []
            on_activity(token=True)
            if payload.strip() == "[DONE]":
                state.done = True
                return
            _chunk(payload, state, attempt, on_progress, on_delta)
    if data and data[-1].strip() == "[DONE]":  # a server that omits the final blank line
        state.done = True


def _comment(text: str, attempt: int, on_progress: Callable[[Progress], None] | None) -> None:
    if not text.startswith(PROGRESS_COMMENT) or on_progress is None:
        return
    try:
        info = json.loads(text[len(PROGRESS_COMMENT):])
        done, total = int(info["prefill_tokens_done"]), int(info["prefill_tokens_total"])
    except (ValueError, KeyError, TypeError):
        return  # a malformed progress comment is only a missed report
    on_progress(Progress("prefill", attempt, prefill_tokens_done=done, prefill_tokens_total=total))


def _chunk(payload: str, state: StreamState, attempt: int, on_progress, on_delta) -> None:
    try:
        chunk = json.loads(payload)
    except ValueError as e:
        raise StreamError(f"stream chunk is not JSON: {payload[:200]!r}") from e
    if not isinstance(chunk, dict):
        raise StreamError(f"stream chunk is not an object: {payload[:200]!r}")
    if chunk.get("error"):
        err = chunk["error"]
        raise StreamError(str(err.get("message", err) if isinstance(err, dict) else err)[:500])
    state.model = chunk.get("model") or state.model
    usage = parse_usage(chunk.get("usage"))
    state.usage = usage or state.usage
    for choice in chunk.get("choices") or ():
        delta = choice.get("delta") or {}
        # DeepSeek spells it reasoning_content, vLLM reasoning
        for kind, text in (("reasoning", delta.get("reasoning_content") or delta.get("reasoning")),
                           ("content", delta.get("content"))):
            if text:
                (state.reasoning if kind == "reasoning" else state.content).append(text)
                state.chunks += 1
                if on_delta is not None:
                    state.delivered = True
                    on_delta(kind, text)
        state.finish_reason = choice.get("finish_reason") or state.finish_reason
    if on_progress is not None and state.chunks:
        on_progress(Progress("decode", attempt, tokens_generated=state.chunks))
