"""The one place pipeline (and Starlette) errors become HTTP JSON errors: {"error": type, "detail": message}."""

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from api.auth import has_live_key
from pipeline.errors import (
    BlobNotFound,
    BlobTooLarge,
    Conflict,
    IngestError,
    NotFound,
    PipelineError,
    PromptError,
    UnsupportedFormat,
)

# Most specific first: the first isinstance match wins.
STATUS = [
    (NotFound, 404, "not_found"),
    (BlobNotFound, 404, "not_found"),
    (Conflict, 409, "conflict"),
    (BlobTooLarge, 413, "too_large"),
    (UnsupportedFormat, 415, "unsupported_format"),
    (PromptError, 422, "invalid_request"),
    (IngestError, 422, "invalid_document"),
    (PipelineError, 400, "bad_request"),
]


class Unauthorized(Exception):
    """Missing, malformed, unknown or revoked API key."""


class LimitExceeded(Exception):
    """A rate limit or quota refused the request: 429 with `Retry-After` (whole seconds, >= 1).

    `error` names the limit (rate_limited, too_many_active_jobs, token_budget_exhausted; service_busy with status 503);
    it labels the metric too.
    """

    def __init__(self, error: str, detail: str, *, retry_after: int, status: int = 429):
        super().__init__(detail)
        self.error, self.retry_after, self.status = error, max(1, int(retry_after)), status


# Starlette's own errors (no route, wrong method, a body that is not even text) in the same ErrorBody shape
HTTP_ERRORS = {400: "bad_request", 404: "not_found", 405: "method_not_allowed"}
UNAUTHORIZED = (401, "unauthorized", "no live API key: send yours as `Authorization: Bearer <key>`")


def error_response(status: int, error: str, detail: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"error": error, "detail": detail}, status_code=status, headers=headers)


async def _unauthenticated(request: Request) -> bool:
    """A /v1 request without a live key, refused 401 even when its body failed to parse.

    NOTE: FastAPI parses a JSON body before it runs the auth dependency; without this a caller with no key would
    learn from 400 / 422 what a route expects (docs/reliability.md A5: no usable key is 401 on every route)."""
    return request.url.path.startswith("/v1/") and not await run_in_threadpool(has_live_key, request)


def install(app: FastAPI) -> None:
    @app.exception_handler(PipelineError)
    async def _pipeline(_: Request, exc: PipelineError) -> JSONResponse:
        for cls, status, name in STATUS:
            if isinstance(exc, cls):
                return error_response(status, name, str(exc))
        raise AssertionError("PipelineError is in STATUS")

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        if await _unauthenticated(request):
            return error_response(*UNAUTHORIZED, {"WWW-Authenticate": "Bearer"})
        parts = [f"{'.'.join(str(x) for x in e.get('loc', ())[1:]) or 'body'}: {e.get('msg')}" for e in exc.errors()]
        return error_response(422, "invalid_request", "; ".join(parts) or "invalid request")

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> JSONResponse:
        if exc.status_code == 400 and await _unauthenticated(request):
            return error_response(*UNAUTHORIZED, {"WWW-Authenticate": "Bearer"})
        return error_response(exc.status_code, HTTP_ERRORS.get(exc.status_code, "http_error"), str(exc.detail),
                              exc.headers)

    @app.exception_handler(Unauthorized)
    async def _unauthorized(_: Request, exc: Unauthorized) -> JSONResponse:
        return error_response(401, "unauthorized", str(exc), {"WWW-Authenticate": "Bearer"})

    @app.exception_handler(LimitExceeded)
    async def _limited(request: Request, exc: LimitExceeded) -> JSONResponse:
        request.app.state.metrics.rejections.labels(exc.error).inc()
        return error_response(exc.status, exc.error, str(exc), {"Retry-After": str(exc.retry_after)})
