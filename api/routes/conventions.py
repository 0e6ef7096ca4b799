"""The helpers every /v1 route is built from, so a new route is born following docs/api-conventions.md:

- `operation(...)`: the decorator's OpenAPI fields: a camelCase operationId, a summary, the success response (with
  its `Location` header on 201/202) and the error statuses (ErrorBody);
- `IdempotencyDep`: the `Idempotency-Key` header of a POST, `replay()` of a stored response and `commit()` that
  stores the new one in the transaction that created the object;
- `created(...)`: a 201 / 202 JSON response with its `Location`;
- `ListDep` + `page_of(...)`: `limit` / `after` in, `data` / `has_more` / `last_id` out;
- `known_query`: a query parameter the route does not take is refused (422), never silently ignored.
"""

import json
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Header, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from api.routes.common import ID_PATTERN, errors
from pipeline.records import idempotency
from pipeline.records.pages import Page

REPLAYED = "Idempotent-Replayed"
LOCATION_HEADER = {"Location": {"description": "the URL of the object created (a job: follow it there)",
                                "schema": {"type": "string"}}}


def operation(operation_id: str, summary: str, model: type[BaseModel] | None = None, *, status: int = 200,
              codes: tuple[int, ...] = (), also: dict[int, str] | None = None) -> dict:
    """Keyword arguments for `@router.<method>(path, **operation(...))`.

    `status` 201 / 202 documents a `Location` header; `also` adds other success statuses that answer the same model
    (e.g. {200: "the same bytes were uploaded before: that document"}); `codes` are the error statuses besides
    401, 422 and 429, which every keyed route may answer. A POST also answers 409 (an Idempotency-Key reused)."""
    ok: dict[int | str, Any] = {}
    if status in (201, 202):
        ok[status] = {"headers": LOCATION_HEADER}
    for code, description in (also or {}).items():
        ok[code] = {"model": model, "description": description}
    out = {"operation_id": operation_id, "summary": summary, "status_code": status,
           "responses": {**ok, **errors(*codes)}}
    return out | ({"response_model": model} if model is not None else {})  # else the return annotation (a stream)


def created(body: BaseModel, location: str, status: int = 201) -> JSONResponse:
    """The response to a POST that created (201) or queued (202) something at `location`."""
    return JSONResponse(body.model_dump(mode="json"), status_code=status, headers={"Location": location})


IdempotencyKeyHeader = Annotated[str | None, Header(
    alias="Idempotency-Key", min_length=1, max_length=255, pattern=r"^[!-~]+$",
    description="any unique string of 1-255 visible ASCII characters (a UUID is fine). Sent again with the same "
                f"request within {idempotency.TTL.total_seconds() / 3600:g} h, it gets the first response again "
                f"(`{REPLAYED}: true`) and creates nothing; with a different request, 409 idempotency_key_reused")]


@dataclass
class Idempotency:
    """A POST's Idempotency-Key (None: none was sent) and the request it names."""

    request: Request
    key: str | None

    def _fingerprint(self, body: Any) -> str:
        return idempotency.fingerprint(self.request.method, self.request.url.path,
                                       dict(self.request.query_params.multi_items()), body)

    @staticmethod
    def _response(row) -> JSONResponse:
        headers = {REPLAYED: "true"} | ({"Location": row.location} if row.location else {})
        return JSONResponse(row.body, status_code=row.status_code, headers=headers)

    def replay(self, session: Session, tenant_id: str, body: Any) -> JSONResponse | None:
        """The response stored for this key and request, or None (no key, or not seen in the last 24 h).
        `body`: the request as parsed (a model's JSON dump, or what identifies an upload). 409 for another request."""
        if self.key is None:
            return None
        row = idempotency.find(session, tenant_id, self.key, self._fingerprint(body))
        return None if row is None else self._response(row)

    def commit(self, session: Session, tenant_id: str, body: Any, response: JSONResponse) -> JSONResponse | None:
        """Store `response` under the key in the session's transaction and commit it. None when this request's work
        was committed; else a request racing with the same key won: this one's work is rolled back and the winner's
        response is returned instead (send it, and do nothing more)."""
        if self.key is None:
            session.commit()
            return None
        fingerprint = self._fingerprint(body)
        try:
            idempotency.remember(session, tenant_id, self.key, fingerprint,
                                 f"{self.request.method} {self.request.url.path}", status_code=response.status_code,
                                 body=json.loads(response.body), location=response.headers.get("location"))
            session.commit()
            return None
        except IntegrityError:
            session.rollback()
            row = idempotency.find(session, tenant_id, self.key, fingerprint)
            if row is None:  # not a race on the key: some other constraint failed
                raise
        return self._response(row)


def get_idempotency(request: Request, key: IdempotencyKeyHeader = None) -> Idempotency:
    return Idempotency(request, key)


IdempotencyDep = Annotated[Idempotency, Depends(get_idempotency)]


@dataclass
class ListParams:
    limit: int
    after: str | None


def get_list_params(
        limit: Annotated[int, Query(ge=1, le=200, description="at most this many items (1-200)")] = 50,
        after: Annotated[str | None, Query(pattern=ID_PATTERN, description="the previous page's `last_id`: continue "
                                                                           "after that item")] = None) -> ListParams:
    return ListParams(limit, after)


ListDep = Annotated[ListParams, Depends(get_list_params)]


def page_of(cls: type[BaseModel], page: Page, convert) -> BaseModel:
    """The list response `cls` (a schemas.Page subclass) for a records page, each row through `convert`."""
    return cls(data=[convert(row) for row in page.rows], has_more=page.has_more, last_id=page.last_id)


def _query_names(dependant) -> set[str]:
    names = {f.alias for f in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return names


def known_query(request: Request) -> None:
    """422 for a query parameter the route does not take: a typo (`limt=5`) or a removed one (`offset`) would
    otherwise be ignored and answer something else than asked. (A router-wide dependency: api.main.)"""
    route = request.scope.get("route")
    allowed = _query_names(route.dependant) if route is not None else set()
    unknown = sorted(set(request.query_params) - allowed)
    if unknown:
        hint = {"offset": " (lists are paged with `after`: pass the previous page's `last_id`)"}
        raise RequestValidationError([{"loc": ("query", name), "msg": f"unknown query parameter{hint.get(name, '')}; "
                                       f"this route takes: {', '.join(sorted(allowed)) or 'none'}"}
                                      for name in unknown])
