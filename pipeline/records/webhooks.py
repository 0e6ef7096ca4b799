"""Webhooks as records (docs/digests-and-webhooks.md): register, list, delete; `emit` an event as one delivery per
subscribed webhook, in the caller's transaction (so an event exists exactly when the change it reports was
committed); claim due deliveries for a send and record each attempt's outcome with exponential back-off.

Deliveries are driven by `next_attempt_at`, which beat polls (workers.tasks.webhooks): no long countdowns. A claimed
delivery's `next_attempt_at` moves `lease` seconds ahead while it is sent, so a worker lost mid-send only delays it.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from pipeline.records.models import Webhook, WebhookAttempt, WebhookDelivery, new_id
from pipeline.records.owned import get_owned
from pipeline.records.pages import Page, page
from pipeline.records.types import utcnow
from pipeline.webhooks import EVENTS
from pipeline.webhooks.addresses import UnsafeWebhookUrl
from pipeline.webhooks.signing import new_secret

PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"


@dataclass(frozen=True)
class RetryPolicy:
    """Back-off between attempts: `base` seconds doubled per failed attempt, at most `max_gap` apart, for at most
    `give_up_after` seconds after the event (then the delivery is failed)."""

    base: float = 10.0
    max_gap: float = 3600.0
    give_up_after: float = 24 * 3600.0

    def delay(self, failed_attempts: int) -> float:
        return min(self.base * 2 ** max(0, failed_attempts - 1), self.max_gap)


def create_webhook(session: Session, tenant_id: str, url: str, events: list[str]) -> Webhook:
    """A new webhook with a new secret (the caller has checked the URL: pipeline.webhooks.addresses)."""
    unknown = sorted(set(events) - set(EVENTS))
    if not events or unknown:
        raise UnsafeWebhookUrl(f"events must be one or more of {', '.join(EVENTS)}"
                               + (f"; unknown: {', '.join(unknown)}" if unknown else ""))
    hook = Webhook(tenant_id=tenant_id, url=url, events=sorted(set(events)), secret=new_secret())
    session.add(hook)
    session.flush()
    return hook


def get_webhook(session: Session, tenant_id: str, webhook_id: str) -> Webhook:
    return get_owned(session, Webhook, tenant_id, webhook_id)


def list_webhooks(session: Session, tenant_id: str, *, limit: int = 50, after: str | None = None) -> Page[Webhook]:
    return page(session, select(Webhook).where(Webhook.tenant_id == tenant_id), Webhook, tenant_id, limit=limit,
                after=after)


def delete_webhook(session: Session, tenant_id: str, webhook_id: str) -> None:
    """Delete the webhook with its deliveries (pending ones are never sent)."""
    session.delete(get_webhook(session, tenant_id, webhook_id))
    session.flush()


def emit(session: Session, tenant_id: str, event: str, key: str, data: dict, *, now: datetime | None = None
         ) -> list[WebhookDelivery]:
    """Queue `event` (`data` is its payload's `data`) for each of the tenant's webhooks that want it, once per
    (webhook, `key`): the same event emitted again (a redelivered task, a second finisher) adds nothing."""
    assert event in EVENTS, event
    now = now or utcnow()
    hooks = [h for h in session.scalars(select(Webhook).where(Webhook.tenant_id == tenant_id)) if event in h.events]
    made = []
    for hook in hooks:
        message_id = f"msg_{new_id()}"
        payload = {"type": event, "timestamp": now.isoformat().replace("+00:00", "Z"), "data": data}
        delivery = WebhookDelivery(tenant_id=tenant_id, webhook_id=hook.id, event=event, event_key=f"{event}:{key}",
                                   message_id=message_id, payload=payload, state=PENDING, attempts=0,
                                   next_attempt_at=now, created_at=now)
        try:
            with session.begin_nested():
                session.add(delivery)
        except IntegrityError:  # already queued for this webhook
            continue
        made.append(delivery)
    return made


def list_deliveries(session: Session, tenant_id: str, webhook_id: str, *, limit: int = 50, after: str | None = None
                    ) -> Page[WebhookDelivery]:
    get_webhook(session, tenant_id, webhook_id)
    q = select(WebhookDelivery).where(WebhookDelivery.tenant_id == tenant_id, WebhookDelivery.webhook_id == webhook_id)
    return page(session, q, WebhookDelivery, tenant_id, limit=limit, after=after)


def attempts_of(session: Session, delivery_ids: list[str]) -> dict[str, list[WebhookAttempt]]:
    """Every recorded attempt of these deliveries, in order."""
    out: dict[str, list[WebhookAttempt]] = {d: [] for d in delivery_ids}
    if delivery_ids:
        q = (select(WebhookAttempt).where(WebhookAttempt.delivery_id.in_(delivery_ids))
             .order_by(WebhookAttempt.delivery_id, WebhookAttempt.number))
        for attempt in session.scalars(q):
            out[attempt.delivery_id].append(attempt)
    return out


@dataclass(frozen=True)
class Send:
    """A claimed attempt: what to send where, and which attempt it is."""

    delivery_id: str
    number: int
    url: str
    secret: str
    message_id: str
    payload: dict


def claim_due(session: Session, *, now: datetime | None = None, lease: float = 60.0, limit: int = 20) -> list[Send]:
    """Take up to `limit` pending deliveries whose `next_attempt_at` has come: each gets its attempt recorded (started)
    and `next_attempt_at` moved `lease` seconds on. Rows are locked with SKIP LOCKED on PostgreSQL, and the move is
    conditional, so two pollers never take the same attempt."""
    now = now or utcnow()
    q = (select(WebhookDelivery).where(WebhookDelivery.state == PENDING, WebhookDelivery.next_attempt_at <= now)
         .order_by(WebhookDelivery.next_attempt_at).limit(limit).with_for_update(skip_locked=True))
    sends = []
    for d in session.scalars(q).all():
        number = d.attempts + 1
        moved = session.execute(
            update(WebhookDelivery).where(WebhookDelivery.id == d.id, WebhookDelivery.attempts == d.attempts,
                                          WebhookDelivery.state == PENDING)
            .values(attempts=number, next_attempt_at=now + timedelta(seconds=lease))
            .execution_options(synchronize_session=False)).rowcount
        if moved != 1:
            continue
        session.add(WebhookAttempt(delivery_id=d.id, number=number, started_at=now))
        hook = session.get(Webhook, d.webhook_id)
        sends.append(Send(d.id, number, hook.url, hook.secret, d.message_id, d.payload))
    session.flush()
    return sends


def record_outcome(session: Session, send: Send, status_code: int | None, error: str | None, *,
                   policy: RetryPolicy, now: datetime | None = None) -> str:
    """Record how the attempt ended and set the delivery's next step: delivered (2xx), another attempt after the
    back-off, or failed once the next one would fall past `policy.give_up_after`. Returns the delivery's state."""
    now = now or utcnow()
    session.execute(update(WebhookAttempt)
                    .where(WebhookAttempt.delivery_id == send.delivery_id, WebhookAttempt.number == send.number)
                    .values(finished_at=now, status_code=status_code, error=error)
                    .execution_options(synchronize_session=False))
    d = session.get(WebhookDelivery, send.delivery_id, populate_existing=True)
    if d is None:
        return "deleted"  # with its webhook, meanwhile
    if d.state != PENDING or d.attempts != send.number:  # a later attempt took over (this one ran past its lease)
        return d.state
    d.last_status, d.last_error = status_code, error
    ok = status_code is not None and 200 <= status_code < 300
    if ok:
        d.state, d.next_attempt_at, d.finished_at = DELIVERED, None, now
    else:
        retry_at = now + timedelta(seconds=policy.delay(send.number))
        if retry_at > d.created_at + timedelta(seconds=policy.give_up_after):
            d.state, d.next_attempt_at, d.finished_at = FAILED, None, now
        else:
            d.next_attempt_at = retry_at
    session.flush()
    return d.state
