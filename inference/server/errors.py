"""Server errors and the ONE place that turns any error into OpenAI or Anthropic error JSON with a status."""

from __future__ import annotations

import logging
import math

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from inference import errors as engine_errors
from inference.text.chat import ChatFormatError

log = logging.getLogger("inference.server")


class ServerError(Exception):
    """A request the server refuses; `status` is the HTTP status, `kind` the OpenAI error type."""

    status = 400
    kind = "invalid_request_error"

    def __init__(self, message: str, *, param: str | None = None, retry_after: float | None = None):
        super().__init__(message)
        self.param, self.retry_after = param, retry_after


class BadRequest(ServerError):
    """Malformed or unsupported request fields."""


class ContextTooLong(ServerError):
    """Prompt plus max_tokens exceed the window; the message names both counts (vLLM's wording)."""

    def __init__(self, prompt_tokens: int, max_tokens: int, max_model_len: int):
        super().__init__(
            f"This model's maximum context length is {max_model_len} tokens. However, you requested "
            f"{prompt_tokens + max_tokens} tokens ({prompt_tokens} in the messages, {max_tokens} in the completion). "
            "Please reduce the length of the messages or completion.", param="messages")
        self.prompt_tokens, self.max_tokens, self.max_model_len = prompt_tokens, max_tokens, max_model_len


class UnknownRequest(ServerError):
    status, kind = 404, "not_found_error"


class UnknownModel(ServerError):
    status, kind = 404, "not_found_error"


class DuplicateRequestId(ServerError):
    status, kind = 409, "conflict_error"


class Overloaded(ServerError):
    status, kind = 429, "rate_limit_error"


class ClientGone(ServerError):
    """The caller hung up before the answer (nginx's 499); the request was aborted."""

    status, kind = 499, "client_closed_request"


class EngineFailed(ServerError):
    status, kind = 503, "server_error"


ANTHROPIC_TYPES = {400: "invalid_request_error", 404: "not_found_error", 409: "invalid_request_error",
                   429: "rate_limit_error", 503: "overloaded_error"}


def as_server_error(exc: Exception) -> ServerError:
    """Map engine and encoding errors onto ServerError; anything unknown becomes a 500."""
    if isinstance(exc, ServerError):
        return exc
    if isinstance(exc, engine_errors.PromptTooLong):
        return ContextTooLong(exc.prompt_tokens, exc.max_tokens, exc.max_model_len)
    if isinstance(exc, engine_errors.QueueFull):
        return Overloaded(f"the server's queue is full ({exc}); retry later",
                          retry_after=exc.retry_after_s)
    if isinstance(exc, engine_errors.DuplicateRequest):
        return DuplicateRequestId(f"a request with this id is already running: {exc}")
    if isinstance(exc, ChatFormatError | engine_errors.InferenceModelError | ValueError):
        return BadRequest(str(exc))
    err = ServerError(f"internal error: {type(exc).__name__}: {exc}")
    err.status, err.kind = 500, "server_error"
    return err


HANDLED = (ServerError, ChatFormatError, engine_errors.InferenceModelError, ValueError)


def error_body(err: ServerError, *, anthropic: bool) -> dict:
    """The JSON body of an error, in the API's own spelling."""
    if anthropic:
        return {"type": "error", "error": {"type": ANTHROPIC_TYPES.get(err.status, "api_error"), "message": str(err)}}
    return {"error": {"message": str(err), "type": err.kind, "param": err.param, "code": err.status}}


async def handle_error(request: Request, exc: Exception) -> JSONResponse:
    """The single exception handler: every refusal leaves the server here."""
    if isinstance(exc, RequestValidationError):
        parts = []
        for e in exc.errors():
            where = ".".join(str(p) for p in e.get("loc", ()) if p != "body")
            parts.append(f"{where}: {e.get('msg')}" if where else
                         f"the body must be a JSON object (send Content-Type: application/json): {e.get('msg')}")
        err: ServerError = BadRequest("invalid request: " + "; ".join(parts))
    else:
        err = as_server_error(exc)
    if err.status >= 500:
        log.error("request %s failed: %s", request.url.path, err, exc_info=exc)
    headers = {}
    if err.retry_after is not None:
        headers["Retry-After"] = str(max(1, math.ceil(err.retry_after)))
    rid = request.headers.get("x-request-id")
    if rid:
        headers["X-Request-Id"] = rid
    anthropic = request.url.path.startswith("/v1/messages")
    return JSONResponse(error_body(err, anthropic=anthropic), status_code=err.status, headers=headers)
