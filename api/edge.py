"""What every /v1 request goes through before FastAPI picks its route or reads its body (a pure ASGI middleware):

1. authentication first: without a live `Authorization: Bearer <key>` the answer is 401 and the body is never read
   (docs/reliability.md A5), however large it is or whatever it holds. The web page's sign-in cookie
   (api.web.cookie) stands in for the key when no Authorization header is sent, and then every request but a GET
   must carry the cookie's CSRF token (403 csrf_failed); `POST /v1/session`, which takes the key in its body, is the
   one route that passes without either (docs/web.md);
2. the key's rate limit: 429 + Retry-After;
3. every response to an authenticated request carries RateLimit-Limit / RateLimit-Remaining / RateLimit-Reset, and
   every /v1 response an X-Request-Id (the caller's, when it sent a sane one); the request's log lines carry
   `http_request_id` and `tenant_id`.

The routes find the tenant in `request.state.tenant` (api.deps). JSON bodies are then capped by FastAPI's own body
limit (`max_body_size`, set per router in api.main), uploads by their streaming limit (api.upload).
NOTE: for a body whose Content-Length is over the limit, FastAPI (Starlette's RequestBodyLimitResponder) replaces
whatever the route answers with a plain-text "Content Too Large"; that one is turned back into the ErrorBody shape
here, naming the limit, so that every error keeps one shape.
"""

import re
import uuid

from fastapi.concurrency import run_in_threadpool
from fastapi.security.utils import get_authorization_scheme_param
from starlette.datastructures import Headers, MutableHeaders
from starlette.middleware.body_limit import MAX_BODY_SIZE_SCOPE_KEY
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import body_too_large, dependency_down, error_response, unavailable
from api.web.cookie import CSRF_HEADER, SAFE_METHODS, cookie_value, csrf_ok, verify
from pipeline.logs import bound, get_logger
from pipeline.records.tenants import authenticate

log = get_logger("api.requests")
REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,100}$")
NO_KEY = "send your API key as `Authorization: Bearer <key>`"
SIGN_IN = "/v1/session"
SIGNED_OUT = "the web sign-in expired or its API key was revoked: sign in again with an API key"
CSRF_DETAIL = ("a request signed in by the web page's cookie must carry its X-CSRF-Token header (GET /v1/session "
               "gives it); reload the page and try again")
SECURITY = {"X-Content-Type-Options": "nosniff"}  # every keyed response; pages add their CSP (api.web.pages)


def authenticate_cookie(state, value: str):
    """(tenant, the key's prefix) for a live web sign-in cookie (api.web.cookie), else None."""
    with state.sessions() as session:
        signed = verify(session, state.settings.session_secret.get_secret_value(), value)
    return (signed.tenant, signed.prefix) if signed is not None else None


def _with_headers(send: Send, extra: dict) -> Send:
    async def sender(message: Message) -> None:
        if message["type"] == "http.response.start":
            MutableHeaders(scope=message).update(extra)
        await send(message)
    return sender


def authenticate_header(sessions, authorization: str | None):
    """(tenant, the key's prefix) for a live key in an Authorization header, else None."""
    scheme, key = get_authorization_scheme_param(authorization)
    if scheme.lower() != "bearer" or not key:
        return None
    with sessions() as session:
        tenant = authenticate(session, key)
    return (tenant, key.split("_", 2)[1]) if tenant is not None else None  # wd_<prefix>_<secret>


class Edge:
    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/v1/"):
            await self.app(scope, receive, send)
            return
        state = scope["app"].state
        headers = Headers(scope=scope)
        given = headers.get("x-request-id") or ""
        request_id = given if REQUEST_ID.match(given) else uuid.uuid4().hex
        with bound(http_request_id=request_id):
            authorization, cookie = headers.get("authorization"), cookie_value(headers.get("cookie"))
            if authorization is None and scope["path"] == SIGN_IN and scope["method"] == "POST":
                # the one /v1 route a key in the body authenticates (api.web.session); no cookie is needed either
                await self.app(scope, receive, _with_headers(send, {"X-Request-Id": request_id}))
                return
            try:  # PostgreSQL down or restarting: 503 + Retry-After, not 500 (docs/reliability.md)
                found = await (run_in_threadpool(authenticate_cookie, state, cookie)
                               if authorization is None and cookie is not None
                               else run_in_threadpool(authenticate_header, state.sessions, authorization))
            except Exception as exc:
                if not dependency_down(exc):
                    raise
                await unavailable(exc)(scope, receive, _with_headers(send, {"X-Request-Id": request_id}))
                return
            if authorization is None and cookie is not None:  # the web page (api.web.cookie)
                if found is not None and scope["method"] not in SAFE_METHODS and not csrf_ok(
                        state.settings.session_secret.get_secret_value(), cookie, headers.get(CSRF_HEADER)):
                    await error_response(403, "csrf_failed", CSRF_DETAIL, {"X-Request-Id": request_id,
                                                                           **SECURITY})(scope, receive, send)
                    return
            if found is None:
                detail = "unknown or revoked API key" if authorization else NO_KEY if cookie is None else SIGNED_OUT
                await error_response(401, "unauthorized", detail, {"WWW-Authenticate": "Bearer",
                                                                   "X-Request-Id": request_id})(scope, receive, send)
                return
            tenant, prefix = found
            # NOTE: the bucket is taken only after the key authenticated, so nobody can drain another key's bucket
            decision = await run_in_threadpool(state.limiter.take, prefix)
            extra = decision.headers() | {"X-Request-Id": request_id} | SECURITY
            with bound(tenant_id=tenant.id):
                if not decision.allowed:
                    state.metrics.rejections.labels("rate_limited").inc()
                    s = state.settings
                    detail = (f"this API key is over its rate limit ({s.rate_per_min:g} requests a minute, bursts of "
                              f"up to {s.rate_burst}); retry in {decision.retry_after} s")
                    await error_response(429, "rate_limited", detail, extra)(scope, receive, send)
                    return
                scope.setdefault("state", {})["tenant"] = tenant

                replacing = None

                async def send_with_headers(message: Message) -> None:
                    nonlocal replacing
                    if message["type"] == "http.response.start":
                        limit = scope.get(MAX_BODY_SIZE_SCOPE_KEY)
                        plain = Headers(raw=message["headers"]).get("content-type", "").startswith("text/plain")
                        if message["status"] == 413 and plain and limit is not None:
                            replacing = body_too_large(limit)
                            message = {**message, "headers": list(replacing.raw_headers)}
                        MutableHeaders(scope=message).update(extra)
                    elif message["type"] == "http.response.body" and replacing is not None:
                        message = {"type": "http.response.body", "body": replacing.body}
                    await send(message)

                await self.app(scope, receive, send_with_headers)
