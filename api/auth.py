"""Is a request's `Authorization: Bearer <key>` a live API key? For errors raised before the auth dependency runs."""

from fastapi import Request
from fastapi.security.utils import get_authorization_scheme_param

from pipeline.records.tenants import authenticate


def has_live_key(request: Request) -> bool:
    """True when the request carries a key that authenticates (same rules as api.deps.get_tenant; no rate limit)."""
    scheme, key = get_authorization_scheme_param(request.headers.get("authorization"))
    if scheme.lower() != "bearer" or not key:
        return False
    with request.app.state.sessions() as session:
        return authenticate(session, key) is not None
