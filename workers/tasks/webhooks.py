"""`workers.webhooks.deliver` (beat, every WHOLEDOC_WEBHOOK_POLL_SECONDS): send the webhook deliveries that are due,
signed per Standard Webhooks, and record every attempt (docs/digests-and-webhooks.md). Retries are rows with a
`next_attempt_at`, never countdowns, so a worker restart or a redelivered task loses nothing and sends nothing
twice at once."""

import time
from concurrent.futures import ThreadPoolExecutor

from pipeline.logs import get_logger
from pipeline.records import webhooks
from pipeline.records.db import transaction
from pipeline.webhooks.sender import send
from pipeline.webhooks.signing import body_bytes, signed_headers
from workers.app import WEBHOOK_DELIVER, app
from workers.settings import sessions, settings

log = get_logger(__name__)
BUDGET = 45.0  # seconds of sends per task run; what is left is the next beat's
AT_ONCE = 8  # deliveries claimed and sent together (each within WHOLEDOC_WEBHOOK_TIMEOUT, inside its lease)


def policy() -> webhooks.RetryPolicy:
    cfg = settings()
    return webhooks.RetryPolicy(base=cfg.webhook_retry_base, max_gap=cfg.webhook_retry_max_gap,
                                give_up_after=cfg.webhook_retry_for)


def deliver_once(send_one: webhooks.Send) -> str:
    """Send one claimed attempt and record its outcome; returns the delivery's state after it."""
    cfg = settings()
    body = body_bytes(send_one.payload)
    outcome = send(send_one.url, body, signed_headers(send_one.secret, send_one.message_id, body),
                   allow_private=cfg.webhook_allow_private, timeout=cfg.webhook_timeout)
    with transaction(sessions()) as s:
        state = webhooks.record_outcome(s, send_one, outcome.status_code, outcome.error, policy=policy())
    log.info("webhook attempt", delivery_id=send_one.delivery_id, attempt=send_one.number,
             status=outcome.status_code, error=outcome.error, state=state)
    return state


@app.task(name=WEBHOOK_DELIVER, soft_time_limit=120, time_limit=150)
def deliver() -> dict:
    """Claim due deliveries in small groups and send each group at once (a slow receiver holds up no other past its
    timeout, and every attempt ends inside its lease), until none is due or the time budget is spent."""
    cfg = settings()
    lease = cfg.webhook_timeout + 30
    started, counts = time.monotonic(), {"sent": 0, "delivered": 0}
    with ThreadPoolExecutor(AT_ONCE) as pool:
        while time.monotonic() - started < BUDGET:
            with transaction(sessions()) as s:
                due = webhooks.claim_due(s, lease=lease, limit=AT_ONCE)
            if not due:
                break
            states = list(pool.map(deliver_once, due))
            counts["sent"] += len(states)
            counts["delivered"] += sum(state == webhooks.DELIVERED for state in states)
    return counts
