"""POST /v1/messages in Anthropic's shape: thinking and text blocks, the streaming event sequence, cache usage."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool

from inference.server import prompt
from inference.server.errors import as_server_error, error_body
from inference.server.generation import Delta, Done, Generation, Keepalive, Progress, Services, collect, request_id_of
from inference.server.schemas import AnthropicMessagesRequest

router = APIRouter()
STOP_REASONS = {"stop": "end_turn", "length": "max_tokens", "abort": "end_turn"}
BLOCKS = {"reasoning": ("thinking", "thinking_delta", "thinking"), "content": ("text", "text_delta", "text")}


def usage_json(done: Done) -> dict:
    """Anthropic's usage: input_tokens are the prompt tokens not read from the cache."""
    return {"input_tokens": done.prompt_tokens - done.cached_tokens, "output_tokens": done.completion_tokens,
            "cache_creation_input_tokens": 0, "cache_read_input_tokens": done.cached_tokens}


def _block(kind: str, text: str) -> dict:
    block_type, _, field = BLOCKS[kind]
    return {"type": block_type, field: text, **({"signature": ""} if kind == "reasoning" else {})}


@router.post("/v1/messages")
async def messages(body: AnthropicMessagesRequest, request: Request):
    services: Services = request.app.state.services
    services.check_model(body.model)
    thinking = body.thinking is not None and body.thinking.type != "disabled"
    effort = prompt.reasoning_effort((body.output_config or {}).get("effort"))
    msgs = prompt.anthropic_messages(body.system, body.messages)
    ids = await run_in_threadpool(prompt.encode, services.runner.tokenizer, msgs, thinking=thinking, effort=effort)
    params = services.sampling(len(ids), max_tokens=body.max_tokens, temperature=body.temperature,
                               top_p=body.top_p, stop=body.stop_sequences,
                               thinking_budget=body.thinking.budget() if thinking else None)
    rid = request_id_of(request, "msg")
    gen = await Generation.start(services, rid, ids, params, thinking=thinking, api="anthropic",
                                 cache_salt=body.cache_salt, prefix_tag=body.prefix_tag)
    message = {"id": rid, "type": "message", "role": "assistant", "model": services.config.model_name}
    headers = {"X-Request-Id": rid}
    if body.stream:
        return StreamingResponse(_stream(gen, message, len(ids)), media_type="text/event-stream",
                                 headers={**headers, "Cache-Control": "no-cache"})
    reasoning, content, done = await collect(gen, request)
    # as in the stream: a text block once text came (or when nothing came at all)
    blocks = [_block("reasoning", reasoning)] if reasoning else []
    blocks += [_block("content", content)] if content or not blocks else []
    return JSONResponse({**message, "content": blocks, "stop_reason": STOP_REASONS.get(done.finish_reason, "end_turn"),
                         "stop_sequence": None, "usage": usage_json(done)}, headers=headers)


def _event(name: str, data: dict) -> str:
    return f"event: {name}\ndata: {json.dumps({'type': name, **data}, ensure_ascii=False)}\n\n"


async def _stream(gen: Generation, message: dict, prompt_tokens: int) -> AsyncIterator[str]:
    """message_start, then per block start/delta.../stop, then message_delta (stop_reason, usage), message_stop."""
    start_usage = {"input_tokens": prompt_tokens, "output_tokens": 0, "cache_creation_input_tokens": 0,
                   "cache_read_input_tokens": 0}
    index, open_kind = -1, None
    try:
        yield _event("message_start", {"message": {**message, "content": [], "stop_reason": None,
                                                   "stop_sequence": None, "usage": start_usage}})
        async for event in gen.events():
            if isinstance(event, Progress):
                info = {"prefill_tokens_done": event.done, "prefill_tokens_total": event.total}
                yield f": progress {json.dumps(info)}\n\n"
            elif isinstance(event, Keepalive):
                yield _event("ping", {})
            elif isinstance(event, Delta):
                if event.kind != open_kind:
                    if open_kind is not None:
                        yield _event("content_block_stop", {"index": index})
                    index, open_kind = index + 1, event.kind
                    yield _event("content_block_start", {"index": index, "content_block": _block(event.kind, "")})
                _, delta_type, field = BLOCKS[event.kind]
                yield _event("content_block_delta", {"index": index, "delta": {"type": delta_type, field: event.text}})
            elif isinstance(event, Done):
                if open_kind is None:  # nothing generated: still one (empty) text block
                    index, open_kind = 0, "content"
                    yield _event("content_block_start", {"index": 0, "content_block": _block("content", "")})
                yield _event("content_block_stop", {"index": index})
                yield _event("message_delta", {"delta": {"stop_reason": STOP_REASONS.get(event.finish_reason,
                                                                                         "end_turn"),
                                                         "stop_sequence": None}, "usage": usage_json(event)})
                yield _event("message_stop", {})
    except Exception as e:  # the engine failed mid-stream: Anthropic's `error` event
        yield _event("error", {"error": error_body(as_server_error(e), anthropic=True)["error"]})
    finally:
        gen.abandon()
