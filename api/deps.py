"""Request dependencies: a database session and the caller's tenant (from `Authorization: Bearer <key>`)."""

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from api.errors import Unauthorized
from pipeline.records.models import Tenant
from pipeline.records.tenants import authenticate

bearer = HTTPBearer(auto_error=False, description="an API key made by `wholedoc admin create-key TENANT`")


def get_session(request: Request) -> Iterator[Session]:
    """A session for the request; routes that write commit explicitly (before enqueueing), the rest roll back."""
    with request.app.state.sessions() as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]


def get_tenant(session: SessionDep, creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> Tenant:
    if creds is None or creds.scheme.lower() != "bearer":
        raise Unauthorized("send your API key as `Authorization: Bearer <key>`")
    tenant = authenticate(session, creds.credentials)
    if tenant is None:
        raise Unauthorized("unknown or revoked API key")
    return tenant


TenantDep = Annotated[Tenant, Depends(get_tenant)]
