"""/v1/webhooks: a tenant's endpoints for event notifications (register, list, get, delete) and each one's
deliveries with every attempt (docs/digests-and-webhooks.md). The signing secret is shown once, when made."""

from datetime import datetime
from typing import Literal

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from api.deps import SessionDep, TenantDep
from api.routes.common import id_path
from api.routes.conventions import IdempotencyDep, ListDep, created, operation, page_of
from api.schemas import Page
from pipeline.logs import get_logger
from pipeline.records import webhooks
from pipeline.webhooks import EVENTS
from pipeline.webhooks.addresses import MAX_URL, check_url

log = get_logger(__name__)
router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])
WebhookId = id_path("webhook")
Event = Literal[tuple(EVENTS)]  # type: ignore[valid-type]


class WebhookCreate(BaseModel):
    url: str = Field(min_length=1, max_length=MAX_URL,
                     description="an http(s) URL reaching a public address; every delivery is POSTed there")
    events: list[Event] = Field(min_length=1, max_length=len(EVENTS),
                                description=f"the events to receive: {', '.join(EVENTS)}")


class WebhookPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    url: str
    events: list[Event]
    created_at: datetime


class WebhookCreated(WebhookPublic):
    secret: str = Field(description="the signing secret (whsec_…), shown only now: verify each delivery's "
                                    "webhook-signature with it (any Standard Webhooks library)")


class WebhookList(Page[WebhookPublic]):
    pass


class AttemptPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    number: int
    started_at: datetime
    finished_at: datetime | None = Field(description="null: still being sent, or its worker was lost")
    status_code: int | None = Field(description="the receiver's HTTP status (null: no answer)")
    error: str | None


class DeliveryPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    message_id: str = Field(description="the webhook-id header: the same on every attempt of this delivery")
    event: Event
    payload: dict = Field(description="the body sent: {type, timestamp, data}")
    state: Literal["pending", "delivered", "failed"]
    attempts: list[AttemptPublic]
    next_attempt_at: datetime | None = Field(description="when the next attempt is due (pending only)")
    created_at: datetime
    finished_at: datetime | None


class DeliveryList(Page[DeliveryPublic]):
    pass


@router.post("", **operation("createWebhook", "Register a webhook", WebhookCreated, status=201, codes=(400, 409)))
def create(body: WebhookCreate, request: Request, session: SessionDep, tenant: TenantDep,
           idem: IdempotencyDep) -> JSONResponse:
    """A webhook for the tenant's events; 400 for a URL that is not http(s) or reaches a loopback, private or
    link-local address. The answer holds the signing secret, once."""
    request_body = body.model_dump(mode="json")
    if (replay := idem.replay(session, tenant.id, request_body)) is not None:
        return replay
    check_url(body.url, allow_private=request.app.state.settings.webhook_allow_private)
    hook = webhooks.create_webhook(session, tenant.id, body.url, list(body.events))
    response = created(WebhookCreated.model_validate(hook), f"/v1/webhooks/{hook.id}")
    if (raced := idem.commit(session, tenant.id, request_body, response)) is not None:
        return raced
    log.info("webhook created", webhook_id=hook.id)
    return response


@router.get("", **operation("listWebhooks", "List webhooks, newest first", WebhookList))
def list_(session: SessionDep, tenant: TenantDep, page: ListDep) -> WebhookList:
    found = webhooks.list_webhooks(session, tenant.id, limit=page.limit, after=page.after)
    return page_of(WebhookList, found, WebhookPublic.model_validate)


@router.get("/{webhook_id}", **operation("getWebhook", "Get a webhook", WebhookPublic, codes=(404,)))
def get(webhook_id: WebhookId, session: SessionDep, tenant: TenantDep) -> WebhookPublic:
    return WebhookPublic.model_validate(webhooks.get_webhook(session, tenant.id, webhook_id))


@router.delete("/{webhook_id}", **operation("deleteWebhook", "Delete a webhook", status=204, codes=(404,)),
               response_class=Response)
def delete(webhook_id: WebhookId, session: SessionDep, tenant: TenantDep) -> Response:
    """Delete the webhook and its deliveries; nothing more is sent to it."""
    webhooks.delete_webhook(session, tenant.id, webhook_id)
    session.commit()
    return Response(status_code=204)


@router.get("/{webhook_id}/deliveries", **operation("listWebhookDeliveries", "List a webhook's deliveries, newest "
                                                    "first, each with every attempt", DeliveryList, codes=(404,)))
def deliveries(webhook_id: WebhookId, session: SessionDep, tenant: TenantDep, page: ListDep) -> DeliveryList:
    found = webhooks.list_deliveries(session, tenant.id, webhook_id, limit=page.limit, after=page.after)
    attempts = webhooks.attempts_of(session, [d.id for d in found.rows])
    return page_of(DeliveryList, found, lambda d: DeliveryPublic.model_validate(
        {**{k: getattr(d, k) for k in ("id", "message_id", "event", "payload", "state", "next_attempt_at",
                                       "created_at", "finished_at")},
         "attempts": [AttemptPublic.model_validate(a) for a in attempts[d.id]]}))
