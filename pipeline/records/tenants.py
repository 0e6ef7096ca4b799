"""Tenants and API keys. A key is `wd_<prefix>_<secret>`; only its sha256 is stored, compared in constant time."""

import hashlib
import hmac
import secrets

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from pipeline.errors import Conflict, NotFound
from pipeline.records.models import ApiKey, Tenant
from pipeline.records.types import utcnow

KEY_PREFIX = "wd_"


def _sha256(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_tenant(session: Session, name: str) -> Tenant:
    """Add a tenant; a name already taken raises Conflict."""
    if not name or len(name) > 200:
        raise Conflict(f"tenant name must be 1-200 characters, got {len(name)}")
    tenant = Tenant(name=name)
    try:
        with session.begin_nested():
            session.add(tenant)
    except IntegrityError as exc:
        raise Conflict(f"a tenant named {name!r} already exists") from exc
    return tenant


def get_tenant(session: Session, name_or_id: str) -> Tenant:
    tenant = session.scalar(select(Tenant).where((Tenant.name == name_or_id) | (Tenant.id == name_or_id)))
    if tenant is None:
        raise NotFound(f"no tenant named {name_or_id!r}")
    return tenant


def create_api_key(session: Session, tenant_id: str, name: str | None = None) -> tuple[ApiKey, str]:
    """Make a key for the tenant. Returns the row and the plain key, which is shown once and never stored."""
    prefix = secrets.token_hex(6)
    key = f"{KEY_PREFIX}{prefix}_{secrets.token_urlsafe(32)}"
    row = ApiKey(tenant_id=tenant_id, prefix=prefix, key_sha256=_sha256(key), name=name)
    session.add(row)
    session.flush()
    return row, key


def authenticate(session: Session, key: str) -> Tenant | None:
    """The tenant owning this key, or None for a malformed, unknown or revoked key."""
    parts = key.split("_", 2) if key.startswith(KEY_PREFIX) else []
    if len(parts) != 3 or not parts[1]:
        return None
    row = session.scalar(select(ApiKey).where(ApiKey.prefix == parts[1]))
    # NOTE: hash first, then compare digests in constant time; a missing row still pays for the hash.
    digest = _sha256(key)
    if row is None or row.revoked_at is not None or not hmac.compare_digest(digest, row.key_sha256):
        return None
    return session.get(Tenant, row.tenant_id)


def revoke_api_key(session: Session, tenant_id: str, prefix: str) -> None:
    row = session.scalar(select(ApiKey).where(ApiKey.prefix == prefix, ApiKey.tenant_id == tenant_id))
    if row is None:
        raise NotFound(f"no API key {prefix!r} for this tenant")
    row.revoked_at = utcnow()
