"""Request dependencies: a database session and the caller's tenant (from `Authorization: Bearer <key>`)."""

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from api.errors import LimitExceeded, Unauthorized
from pipeline.records.models import Tenant
from pipeline.records.tenants import authenticate

bearer = HTTPBearer(auto_error=False, description="an API key made by `wholedoc admin create-key TENANT`")


def get_session(request: Request) -> Iterator[Session]:
    """A session for the request; routes that write commit explicitly (before enqueueing), the rest roll back."""
    with request.app.state.sessions() as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]


def get_tenant(request: Request, session: SessionDep,
               creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> Tenant:
    """The key's tenant, after the key's rate limit let the request through (429 otherwise).

    NOTE: the bucket is taken only after the key authenticated, so nobody can drain another key's bucket.
    """
    if creds is None or creds.scheme.lower() != "bearer":
        raise Unauthorized("send your API key as `Authorization: Bearer <key>`")
    tenant = authenticate(session, creds.credentials)
    if tenant is None:
        raise Unauthorized("unknown or revoked API key")
    prefix = creds.credentials.split("_", 2)[1]  # wd_<prefix>_<secret>: the key's unique id (authenticate checked)
    decision = request.app.state.limiter.take(prefix)
    if not decision.allowed:
        settings = request.app.state.settings
        raise LimitExceeded("rate_limited", f"this API key is over its rate limit ({settings.rate_per_min:g} requests "
                            f"a minute, bursts of up to {settings.rate_burst}); retry in {decision.retry_after} s",
                            retry_after=decision.retry_after)
    return tenant


TenantDep = Annotated[Tenant, Depends(get_tenant)]
