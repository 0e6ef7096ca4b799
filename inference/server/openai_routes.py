"""POST /v1/chat/completions in OpenAI's shape, with DeepSeek's thinking toggle, reasoning_content and usage fields."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool

from inference.server import prompt
from inference.server.errors import as_server_error, error_body
from inference.server.generation import Delta, Done, Generation, Keepalive, Progress, Services, collect, request_id_of
from inference.server.schemas import ChatCompletionRequest

router = APIRouter()


def usage_json(done: Done) -> dict:
    """OpenAI's usage plus DeepSeek's cache spellings."""
    return {
        "prompt_tokens": done.prompt_tokens,
        "completion_tokens": done.completion_tokens,
        "total_tokens": done.prompt_tokens + done.completion_tokens,
        "prompt_tokens_details": {"cached_tokens": done.cached_tokens},
        "completion_tokens_details": {"reasoning_tokens": done.reasoning_tokens},
        "prompt_cache_hit_tokens": done.cached_tokens,
        "prompt_cache_miss_tokens": done.prompt_tokens - done.cached_tokens,
    }


def thinking_of(body, default: bool) -> bool:
    return default if body.thinking is None else body.thinking.type != "disabled"


@router.post("/v1/chat/completions")
async def chat_completions(body: ChatCompletionRequest, request: Request):
    services: Services = request.app.state.services
    services.check_model(body.model)
    thinking = thinking_of(body, services.config.default_thinking)
    effort = prompt.reasoning_effort(body.reasoning_effort)
    messages = prompt.openai_messages(body.messages)
    ids = await run_in_threadpool(prompt.encode, services.runner.tokenizer, messages, thinking=thinking, effort=effort)
    params = services.sampling(len(ids), max_tokens=body.max_completion_tokens or body.max_tokens,
                               temperature=body.temperature, top_p=body.top_p, stop=body.stop, seed=body.seed,
                               ignore_eos=body.ignore_eos,
                               thinking_budget=body.thinking.budget() if thinking and body.thinking else None)
    rid = request_id_of(request, "chatcmpl")
    gen = await Generation.start(services, rid, ids, params, thinking=thinking, api="openai",
                                 cache_salt=body.cache_salt, prefix_tag=body.prefix_tag)
    headers = {"X-Request-Id": rid}
    if body.stream:
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        return StreamingResponse(_stream(gen, services.config.model_name, include_usage),
                                 media_type="text/event-stream", headers={**headers, "Cache-Control": "no-cache"})
    reasoning, content, done = await collect(gen, request)
    message = {"role": "assistant", "content": content}
    if reasoning is not None:
        message["reasoning_content"] = message["reasoning"] = reasoning
    return JSONResponse({
        "id": rid, "object": "chat.completion", "created": int(time.time()), "model": services.config.model_name,
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": done.finish_reason}],
        "usage": usage_json(done), "system_fingerprint": None,
    }, headers=headers)


def _sse(obj: dict) -> str:
    return f"data: {json.dumps(obj, ensure_ascii=False)}\n\n"


async def _stream(gen: Generation, model: str, include_usage: bool) -> AsyncIterator[str]:
    """SSE chunks; `: progress {...}` comments while prefilling; a dropped connection aborts the request."""
    created = int(time.time())
    base = {"id": gen.request_id, "object": "chat.completion.chunk", "created": created, "model": model}
    extra = {"usage": None} if include_usage else {}

    def chunk(delta: dict, finish_reason: str | None = None) -> str:
        return _sse({**base, "choices": [{"index": 0, "delta": delta, "logprobs": None,
                                          "finish_reason": finish_reason}], **extra})

    try:
        yield chunk({"role": "assistant", "content": ""})
        async for event in gen.events():
            if isinstance(event, Progress):
                info = {"prefill_tokens_done": event.done, "prefill_tokens_total": event.total}
                yield f": progress {json.dumps(info)}\n\n"
            elif isinstance(event, Keepalive):
                yield ": keepalive\n\n"
            elif isinstance(event, Delta):
                if event.kind == "reasoning":
                    yield chunk({"reasoning_content": event.text, "reasoning": event.text})
                else:
                    yield chunk({"content": event.text})
            elif isinstance(event, Done):
                yield chunk({}, event.finish_reason)
                if include_usage:
                    yield _sse({**base, "choices": [], "usage": usage_json(event)})
        yield "data: [DONE]\n\n"
    except Exception as e:  # the engine failed mid-stream: say so in the stream (the status line is gone)
        yield _sse(error_body(as_server_error(e), anthropic=False))
    finally:
        gen.abandon()  # no-op when finished; otherwise the client went away
