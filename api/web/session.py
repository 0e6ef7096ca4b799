"""/v1/session: the web page signs in by pasting an API key once (docs/web.md).

`POST` checks the key (in the body, or the request's own Bearer key) and sets an HttpOnly, SameSite=Strict cookie
(Secure over HTTPS) that stands in for the key until it expires or the key is revoked (api.web.cookie); `GET` says who
is signed in and hands the page its CSRF token; `DELETE` signs out.
"""

from datetime import UTC, datetime
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials
from fastapi.security.utils import get_authorization_scheme_param
from pydantic import BaseModel, Field
from sqlalchemy import select

from api.deps import SessionDep, TenantDep, bearer
from api.errors import Unauthorized
from api.routes.conventions import IdempotencyDep, operation
from api.web.cookie import COOKIE, csrf_token, issue, verify
from pipeline.errors import PipelineError
from pipeline.records.models import ApiKey, Tenant
from pipeline.records.tenants import authenticate

router = APIRouter(prefix="/v1/session", tags=["session"])
HINT = "wholedoc_signed_in"


class SessionCreate(BaseModel):
    api_key: str | None = Field(None, max_length=200, description="the key to sign in with (default: the request's "
                                                                  "own Bearer key)")


class SessionPublic(BaseModel):
    tenant_id: str
    tenant_name: str
    key_prefix: str = Field(description="the visible part of the API key this session stands for")
    expires_at: datetime | None = Field(description="when the sign-in ends (null: a Bearer key, no cookie)")
    csrf_token: str | None = Field(None, description="send it as `X-CSRF-Token` on every request that is not a GET "
                                                     "(only GET /v1/session gives it; null for a Bearer key)")


class CrossSite(PipelineError):
    """A sign-in posted from another site (login CSRF)."""


def _secret(request: Request) -> str:
    return request.app.state.settings.session_secret.get_secret_value()


def _same_origin(request: Request) -> None:
    origin = request.headers.get("origin")
    if origin and origin != "null" and urlsplit(origin).netloc != request.headers.get("host"):
        raise CrossSite(f"a sign-in from {origin} is refused: sign in on this site's own page")
    if origin == "null":
        raise CrossSite("a sign-in from an opaque origin is refused: sign in on this site's own page")


def _key_row(sessions, key: str) -> ApiKey | None:
    with sessions() as s:
        if authenticate(s, key) is None:
            return None
        row = s.scalar(select(ApiKey).where(ApiKey.prefix == key.split("_", 2)[1]))
        s.expunge(row)
        return row


def _bearer_key(request: Request) -> str | None:
    scheme, key = get_authorization_scheme_param(request.headers.get("authorization"))
    return key if scheme.lower() == "bearer" and key else None


@router.post("", **operation("createSession", "Sign the web page in with an API key (sets its cookie)",
                             SessionPublic, status=200, codes=(400, 409)))
def sign_in(request: Request, idem: IdempotencyDep, body: SessionCreate | None = None,
                  _: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)] = None) -> JSONResponse:
    """Check the key (`api_key`, else the request's Bearer key) and answer with an HttpOnly, SameSite=Strict cookie
    that signs later requests in until it expires (`WHOLEDOC_SESSION_HOURS`) or the key is revoked. A replay of an
    Idempotency-Key answers the stored body and sets no new cookie."""
    _same_origin(request)
    key = (body.api_key if body else None) or _bearer_key(request)
    if not key:
        raise Unauthorized("paste an API key (`wholedoc admin create-key TENANT` makes one)")
    row = _key_row(request.app.state.sessions, key)
    if row is None:
        raise Unauthorized("unknown or revoked API key")
    settings = request.app.state.settings
    value, expires = issue(_secret(request), row, settings.session_hours * 3600)
    with request.app.state.sessions() as s:
        fingerprint = {"key_prefix": row.prefix}  # never the key itself
        if (replay := idem.replay(s, row.tenant_id, fingerprint)) is not None:
            return replay
        tenant = s.get(Tenant, row.tenant_id)
        out = SessionPublic(tenant_id=tenant.id, tenant_name=tenant.name, key_prefix=row.prefix,
                            expires_at=datetime.fromtimestamp(expires, UTC))
        response = JSONResponse(out.model_dump(mode="json"))
        if (raced := idem.commit(s, row.tenant_id, fingerprint, response)) is not None:
            return raced
    secure, age = request.url.scheme == "https", int(settings.session_hours * 3600)
    response.set_cookie(COOKIE, value, max_age=age, path="/", httponly=True, samesite="strict", secure=secure)
    # a hint the page's script may read (it holds nothing): "a sign-in cookie exists", so it asks GET /v1/session
    response.set_cookie(HINT, "1", max_age=age, path="/", samesite="strict", secure=secure)
    return response


@router.get("", **operation("getSession", "Who is signed in, and the CSRF token of the page's cookie", SessionPublic))
def get_session(request: Request, session: SessionDep, tenant: TenantDep) -> SessionPublic:
    value = request.cookies.get(COOKIE)
    signed = verify(session, _secret(request), value) if value and "authorization" not in request.headers else None
    if signed is None:  # a Bearer key: nothing to protect from cross-site requests
        key = _bearer_key(request) or ""
        return SessionPublic(tenant_id=tenant.id, tenant_name=tenant.name, key_prefix=key.split("_", 2)[1:2][0]
                             if key.count("_") >= 2 else "", expires_at=None)
    return SessionPublic(tenant_id=tenant.id, tenant_name=tenant.name, key_prefix=signed.prefix,
                         expires_at=datetime.fromtimestamp(signed.expires_at, UTC),
                         csrf_token=csrf_token(_secret(request), value))


@router.delete("", **operation("deleteSession", "Sign the web page out (clears its cookie)", status=204),
               response_class=Response)
def sign_out(request: Request, tenant: TenantDep) -> Response:
    response = Response(status_code=204)
    secure = request.url.scheme == "https"
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict", secure=secure)
    response.delete_cookie(HINT, path="/", samesite="strict", secure=secure)
    return response
