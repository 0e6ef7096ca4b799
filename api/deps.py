"""Request dependencies: a database session and the caller's tenant (authenticated by api.edge)."""

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from api.errors import Unauthorized
from pipeline.records.models import Tenant

bearer = HTTPBearer(auto_error=False, description="an API key made by `wholedoc admin create-key TENANT`")


def get_session(request: Request) -> Iterator[Session]:
    """A session for the request; routes that write commit explicitly (before enqueueing), the rest roll back."""
    with request.app.state.sessions() as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]


def get_tenant(request: Request, _: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> Tenant:
    """The tenant api.edge authenticated (and rate-limited) before the route was chosen; the bearer dependency
    puts the scheme into the OpenAPI document."""
    tenant = getattr(request.state, "tenant", None)
    if tenant is None:  # a /v1 route always passes api.edge; anything else reaching here is a wiring bug
        raise Unauthorized("send your API key as `Authorization: Bearer <key>`")
    return tenant


TenantDep = Annotated[Tenant, Depends(get_tenant)]
