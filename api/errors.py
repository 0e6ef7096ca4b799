"""The one place pipeline errors become HTTP JSON errors: {"error": type, "detail": message}."""

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

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

    `error` names the limit (rate_limited, too_many_active_jobs, token_budget_exhausted); it labels the metric too.
    """

    def __init__(self, error: str, detail: str, *, retry_after: int):
        super().__init__(detail)
        self.error, self.retry_after = error, max(1, int(retry_after))


def error_response(status: int, error: str, detail: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"error": error, "detail": detail}, status_code=status, headers=headers)


def install(app: FastAPI) -> None:
    @app.exception_handler(PipelineError)
    async def _pipeline(_: Request, exc: PipelineError) -> JSONResponse:
        for cls, status, name in STATUS:
            if isinstance(exc, cls):
                return error_response(status, name, str(exc))
        raise AssertionError("PipelineError is in STATUS")

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        parts = [f"{'.'.join(str(x) for x in e.get('loc', ())[1:]) or 'body'}: {e.get('msg')}" for e in exc.errors()]
        return error_response(422, "invalid_request", "; ".join(parts) or "invalid request")

    @app.exception_handler(Unauthorized)
    async def _unauthorized(_: Request, exc: Unauthorized) -> JSONResponse:
        return error_response(401, "unauthorized", str(exc), {"WWW-Authenticate": "Bearer"})

    @app.exception_handler(LimitExceeded)
    async def _limited(request: Request, exc: LimitExceeded) -> JSONResponse:
        request.app.state.metrics.rejections.labels(exc.error).inc()
        return error_response(429, exc.error, str(exc), {"Retry-After": str(exc.retry_after)})
