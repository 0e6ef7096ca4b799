"""The web page's sign-in cookie and its CSRF token (docs/web.md).

A person pastes an API key once; `POST /v1/session` answers with a cookie holding
`<key prefix>.<expiry>.<nonce>.<mac>`, where the MAC is HMAC-SHA256 over the rest, keyed by the session secret and
the key's stored hash. So the cookie names the key without holding it, is checked without a table of sessions, and
stops working when the key is revoked (its row says so) or its expiry passes. The CSRF token is a second MAC over the
whole cookie: a page reads it from `GET /v1/session` (same-origin only) and sends it as `X-CSRF-Token` on every
request that is not a GET; a cross-site form or script cannot know it.
"""

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

from sqlalchemy import select

from pipeline.records.models import ApiKey, Tenant

COOKIE = "wholedoc_session"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True)
class Signed:
    tenant: Tenant
    prefix: str
    expires_at: int  # Unix seconds


def _mac(secret: str, key_sha256: str, message: str) -> str:
    return hmac.new(f"{secret}\0{key_sha256}".encode(), message.encode(), hashlib.sha256).hexdigest()


def issue(secret: str, key: ApiKey, lifetime_s: float, now: float | None = None) -> tuple[str, int]:
    """A cookie value for `key` valid for `lifetime_s` seconds, and its expiry (Unix seconds)."""
    expires = int((now or time.time()) + lifetime_s)
    body = f"{key.prefix}.{expires}.{secrets.token_hex(8)}"
    return f"{body}.{_mac(secret, key.key_sha256, body)}", expires


def verify(session, secret: str, value: str | None, now: float | None = None) -> Signed | None:
    """The tenant a cookie value signs in, or None: malformed, forged, expired, or its key revoked or gone."""
    parts = (value or "").split(".")
    if len(parts) != 4 or not parts[1].isdigit() or len(value) > 200:
        return None
    prefix, expires = parts[0], int(parts[1])
    if expires <= (now or time.time()):
        return None
    row = session.scalar(select(ApiKey).where(ApiKey.prefix == prefix))
    if row is None or row.revoked_at is not None:
        return None
    if not hmac.compare_digest(_mac(secret, row.key_sha256, ".".join(parts[:3])), parts[3]):
        return None
    tenant = session.get(Tenant, row.tenant_id)
    return Signed(tenant, prefix, expires) if tenant is not None else None


def csrf_token(secret: str, value: str) -> str:
    """The CSRF token that goes with a cookie value."""
    return hmac.new(f"{secret}\0csrf".encode(), value.encode(), hashlib.sha256).hexdigest()


def csrf_ok(secret: str, value: str, sent: str | None) -> bool:
    return bool(sent) and hmac.compare_digest(csrf_token(secret, value), sent)


def cookie_value(cookie_header: str | None) -> str | None:
    """The session cookie's value in a Cookie header (None when absent)."""
    for part in (cookie_header or "").split(";"):
        name, _, val = part.strip().partition("=")
        if name == COOKIE and val:
            return val
    return None
