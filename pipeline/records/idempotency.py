"""Idempotency keys: the response to a POST made with an `Idempotency-Key`, kept per tenant for `TTL`.

The same key with the same request (its fingerprint) gets the stored response again; the same key with another
request is `IdempotencyKeyReused`. `remember` adds the row in the caller's transaction, the one that creates the
object, so a stored response is committed together with what it names, and only successful responses are kept (a
refused request creates nothing, so retrying it under the same key runs it again). Two requests racing with one key:
the second insert waits on the unique (tenant_id, key) index, fails when the first commits, and the caller rolls
back its work and answers with the winner's response. The reconciler deletes expired rows (`purge_expired`).
"""

import hashlib
import json
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from pipeline.errors import IdempotencyKeyReused
from pipeline.records.models import IdempotencyKey
from pipeline.records.types import utcnow

TTL = timedelta(hours=24)


def fingerprint(method: str, path: str, query: dict, body: object) -> str:
    """sha256 of the request as the server understood it: method, path, query and the parsed body (key order and
    whitespace do not matter; for an upload, `body` carries the file's sha256 rather than its bytes)."""
    canonical = json.dumps([method.upper(), path, sorted(query.items()), body], sort_keys=True, separators=(",", ":"),
                           default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def find(session: Session, tenant_id: str, key: str, fingerprint: str, *, now: datetime | None = None
         ) -> IdempotencyKey | None:
    """The live stored response for this key, or None; IdempotencyKeyReused if it was made for another request."""
    now = now or utcnow()
    row = session.scalar(select(IdempotencyKey).where(IdempotencyKey.tenant_id == tenant_id,
                                                      IdempotencyKey.key == key, IdempotencyKey.expires_at > now))
    if row is not None and row.fingerprint != fingerprint:
        raise IdempotencyKeyReused(
            f"the Idempotency-Key {key!r} was used at {row.created_at:%Y-%m-%d %H:%M:%S} UTC for a different request "
            f"({row.request} with other parameters or another body); a key names one request for "
            f"{TTL.total_seconds() / 3600:g} h: send a new key for a new request")
    return row


def remember(session: Session, tenant_id: str, key: str, fingerprint: str, request: str, *, status_code: int,
             body: dict, location: str | None, now: datetime | None = None) -> IdempotencyKey:
    """Add the response to the caller's transaction (flushed: a racing request with the same key waits here, then
    gets sqlalchemy's IntegrityError once the other commits). An expired row with the key is replaced."""
    now = now or utcnow()
    session.execute(delete(IdempotencyKey).where(IdempotencyKey.tenant_id == tenant_id, IdempotencyKey.key == key,
                                                 IdempotencyKey.expires_at <= now))
    row = IdempotencyKey(tenant_id=tenant_id, key=key, fingerprint=fingerprint, request=request[:600],
                         status_code=status_code, body=body, location=location, created_at=now, expires_at=now + TTL)
    session.add(row)
    session.flush()
    return row


def purge_expired(session: Session, *, now: datetime | None = None) -> int:
    """Delete every expired stored response; how many were deleted."""
    result = session.execute(delete(IdempotencyKey).where(IdempotencyKey.expires_at <= (now or utcnow()))
                             .execution_options(synchronize_session=False))
    return result.rowcount or 0
