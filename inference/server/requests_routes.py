"""wholedoc's extra endpoints: request status and abort, cache probe, tokenize; plus models, health, metrics."""

from __future__ import annotations

import time

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from inference.server import prompt
from inference.server.errors import BadRequest, EngineFailed, UnknownRequest
from inference.server.generation import Services
from inference.server.schemas import CacheProbeRequest, TokenizeRequest

router = APIRouter()
STARTED = int(time.time())


def _services(request: Request) -> Services:
    return request.app.state.services


def progress_json(p) -> dict:
    return {"id": p.request_id, "state": p.state, "prefill_tokens_done": p.prefill_tokens_done,
            "prefill_tokens_total": p.prefill_tokens_total, "tokens_generated": p.tokens_generated,
            "cached_tokens": p.cached_tokens}


def _found(p, request_id: str) -> dict:
    if p is None:
        raise UnknownRequest(f"no request with id {request_id!r} (unknown, or finished long ago)")
    return progress_json(p)


@router.get("/v1/requests/{request_id}")
async def request_status(request_id: str, request: Request):
    """Where a request is: waiting, prefilling (tokens done/total), decoding, finished or aborted."""
    return _found(await _services(request).runner.progress(request_id), request_id)


@router.delete("/v1/requests/{request_id}")
async def abort_request(request_id: str, request: Request):
    """Abort a request (its stream ends with finish_reason "abort"); a finished one is left as it is."""
    return _found(await _services(request).runner.abort(request_id), request_id)


async def _prompt_ids(services: Services, body: CacheProbeRequest | TokenizeRequest, raw_text: str | None) -> list[int]:
    """Token ids of messages (encoded exactly as a chat request would be) or of a raw prompt string."""
    if body.messages is not None:
        thinking = services.config.default_thinking if body.thinking is None else body.thinking.type != "disabled"
        effort = prompt.reasoning_effort(body.reasoning_effort)
        msgs = prompt.openai_messages(body.messages)
        return await run_in_threadpool(prompt.encode, services.runner.tokenizer, msgs, thinking=thinking, effort=effort)
    if raw_text is not None:
        enc = await run_in_threadpool(services.runner.tokenizer.encode, raw_text, add_special_tokens=False)
        return enc.ids
    raise BadRequest("give `messages` or a raw prompt (`prompt` / `prompt_token_ids`)", param="messages")


@router.post("/v1/cache/probe")
async def cache_probe(body: CacheProbeRequest, request: Request):
    """How many leading prompt tokens the prefix cache holds and how many a request would compute (no side effects);
    with `cache_salt`, as a request carrying that salt would see it."""
    services = _services(request)
    services.check_model(body.model)
    if body.messages is None and body.prompt_token_ids is not None:
        ids = body.prompt_token_ids
        vocab = services.runner.tokenizer.get_vocab_size()
        bad = next((t for t in ids if not 0 <= t < vocab), None)
        if bad is not None:
            raise BadRequest(f"prompt_token_ids holds {bad}, outside the vocabulary [0, {vocab})",
                             param="prompt_token_ids")
    else:
        ids = await _prompt_ids(services, body, None)
    cached = await services.runner.probe(ids, body.cache_salt)
    return {"prompt_tokens": len(ids), "cached_tokens": cached, "tokens_to_compute": len(ids) - cached,
            "max_model_len": services.runner.max_model_len}


@router.post("/v1/tokenize")
async def tokenize(body: TokenizeRequest, request: Request):
    """The served tokenizer's count for messages (chat encoding applied) or a raw prompt."""
    services = _services(request)
    services.check_model(body.model)
    ids = await _prompt_ids(services, body, body.prompt)
    out = {"count": len(ids), "max_model_len": services.runner.max_model_len}
    if body.return_token_ids:
        out["tokens"] = ids
    return out


@router.get("/v1/models")
async def models(request: Request):
    services = _services(request)
    return {"object": "list", "data": [{"id": services.config.model_name, "object": "model", "created": STARTED,
                                        "owned_by": "wholedoc", "max_model_len": services.runner.max_model_len}]}


@router.get("/health")
async def health(request: Request):
    runner = _services(request).runner
    if not runner.healthy:
        raise EngineFailed(f"the engine is not running: {runner.failure!r}")
    return JSONResponse({"status": "ok"})


@router.get("/metrics")
async def metrics(request: Request):
    return Response(_services(request).metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")
