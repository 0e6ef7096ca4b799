"""The one place pipeline (and Starlette) errors become HTTP JSON errors: {"error": type, "detail": message}.

The `error` values a client can branch on (docs/api-conventions.md lists them with their statuses): unauthorized,
not_found, method_not_allowed, bad_request, invalid_request, invalid_document, conflict, idempotency_key_reused,
too_large, unsupported_format, document_too_long, rate_limited, too_many_active_jobs, token_budget_exhausted,
service_busy, service_unavailable, storage_full, http_error.

A dependency that is down (PostgreSQL, the blob store) answers 503 `service_unavailable` with `Retry-After`, never
500: docs/reliability.md ("Faults on real processes").
"""

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from starlette.exceptions import HTTPException
from starlette.middleware.body_limit import MAX_BODY_SIZE_SCOPE_KEY

from pipeline.errors import (
    BlobNotFound,
    BlobTooLarge,
    Conflict,
    IdempotencyKeyReused,
    IngestError,
    InvalidCursor,
    NotFound,
    OverWindow,
    PipelineError,
    PromptError,
    StorageFull,
    StorageUnavailable,
    UnsupportedFormat,
)

UNAVAILABLE_RETRY_AFTER = 5  # seconds: a restarted database or blob store is usually back within this

# Most specific first: the first isinstance match wins.
STATUS = [
    (NotFound, 404, "not_found"),
    (BlobNotFound, 404, "not_found"),
    (IdempotencyKeyReused, 409, "idempotency_key_reused"),
    (Conflict, 409, "conflict"),
    (BlobTooLarge, 413, "too_large"),
    (StorageFull, 507, "storage_full"),
    (UnsupportedFormat, 415, "unsupported_format"),
    (InvalidCursor, 422, "invalid_request"),
    (PromptError, 422, "invalid_request"),
    (IngestError, 422, "invalid_document"),
    (PipelineError, 400, "bad_request"),
]


class Unauthorized(Exception):
    """Missing, malformed, unknown or revoked API key."""


class LimitExceeded(Exception):
    """A quota refused the request: 429 with `Retry-After` (whole seconds, >= 1).

    `error` names the limit (too_many_active_jobs, token_budget_exhausted; service_busy with status 503; the rate
    limit answers from api.edge); it labels the metric too.
    """

    def __init__(self, error: str, detail: str, *, retry_after: int, status: int = 429):
        super().__init__(detail)
        self.error, self.retry_after, self.status = error, max(1, int(retry_after)), status


# Starlette's own errors (no route, wrong method, a body that is not even text, over the body limit) in ErrorBody shape
HTTP_ERRORS = {400: "bad_request", 404: "not_found", 405: "method_not_allowed", 413: "too_large"}


def error_response(status: int, error: str, detail: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"error": error, "detail": detail}, status_code=status, headers=headers)


def body_too_large(limit: int) -> JSONResponse:
    """413 for a body over FastAPI's body limit (`max_body_size`, per router in api.main), naming the limit."""
    return error_response(413, "too_large", f"the request body is over this route's limit of {limit:,} bytes "
                                            f"({limit / 2**20:g} MiB); send a smaller body")


def dependency_down(exc: BaseException) -> bool:
    """True for a failure to reach PostgreSQL (refused, dropped, restarting) or the blob store: worth a retry."""
    if isinstance(exc, StorageUnavailable | OperationalError | InterfaceError):
        return True
    return isinstance(exc, DBAPIError) and exc.connection_invalidated


def unavailable(exc: BaseException) -> JSONResponse:
    """503 `service_unavailable` + Retry-After for a dependency that is down; the detail names which."""
    what = "the blob store" if isinstance(exc, StorageUnavailable) else "the database"
    return error_response(503, "service_unavailable", f"{what} is unavailable right now; retry in "
                                                      f"{UNAVAILABLE_RETRY_AFTER} s (with the same Idempotency-Key)",
                          {"Retry-After": str(UNAVAILABLE_RETRY_AFTER)})


def install(app: FastAPI) -> None:
    @app.exception_handler(DBAPIError)
    async def _database(_: Request, exc: DBAPIError) -> JSONResponse:
        if dependency_down(exc):
            return unavailable(exc)
        raise exc

    @app.exception_handler(PipelineError)
    async def _pipeline(_: Request, exc: PipelineError) -> JSONResponse:
        if isinstance(exc, StorageUnavailable):
            return unavailable(exc)
        for cls, status, name in STATUS:
            if isinstance(exc, cls):
                return error_response(status, name, str(exc))
        raise AssertionError("PipelineError is in STATUS")

    @app.exception_handler(OverWindow)
    async def _over_window(_: Request, exc: OverWindow) -> JSONResponse:
        """400 with the counts beside the message (docs/over-window.md): nothing was queued."""
        body = {"error": "document_too_long", "detail": str(exc), "document_tokens": exc.document_tokens,
                "needed_tokens": exc.needed_tokens, "window_tokens": exc.window_tokens}
        return JSONResponse(body, status_code=400)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        parts = [f"{'.'.join(str(x) for x in e.get('loc', ())[1:]) or 'body'}: {e.get('msg')}" for e in exc.errors()]
        return error_response(422, "invalid_request", "; ".join(parts) or "invalid request")

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> JSONResponse:
        limit = request.scope.get(MAX_BODY_SIZE_SCOPE_KEY)
        if exc.status_code == 413 and limit is not None:  # a body counted over the limit while read
            return body_too_large(limit)
        return error_response(exc.status_code, HTTP_ERRORS.get(exc.status_code, "http_error"), str(exc.detail),
                              exc.headers)

    @app.exception_handler(Unauthorized)
    async def _unauthorized(_: Request, exc: Unauthorized) -> JSONResponse:
        return error_response(401, "unauthorized", str(exc), {"WWW-Authenticate": "Bearer"})

    @app.exception_handler(LimitExceeded)
    async def _limited(request: Request, exc: LimitExceeded) -> JSONResponse:
        request.app.state.metrics.rejections.labels(exc.error).inc()
        return error_response(exc.status, exc.error, str(exc), {"Retry-After": str(exc.retry_after)})
