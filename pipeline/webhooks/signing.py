"""Standard Webhooks signatures (https://www.standardwebhooks.com), through the `standardwebhooks` package: a
`whsec_` secret per webhook, and the `webhook-id`, `webhook-timestamp` and `webhook-signature` headers of a send."""

import base64
import json
import secrets
from datetime import UTC, datetime

from standardwebhooks.webhooks import Webhook

SECRET_PREFIX = "whsec_"


def new_secret() -> str:
    """A new signing secret: `whsec_` + 32 random bytes in base64 (the form the specification's libraries read)."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def body_bytes(payload: dict) -> bytes:
    """The one serialization of a payload that is sent (and signed): the same bytes on every attempt."""
    return json.dumps(payload, separators=(",", ":"), sort_keys=True, ensure_ascii=False).encode()


def signed_headers(secret: str, message_id: str, body: bytes, at: datetime | None = None) -> dict[str, str]:
    """The headers of one attempt: the message's id (the same on every retry), the attempt's time, its signature."""
    at = (at or datetime.now(UTC)).astimezone(UTC)
    signature = Webhook(secret).sign(message_id, at, body.decode())
    return {"webhook-id": message_id, "webhook-timestamp": str(int(at.timestamp())),
            "webhook-signature": signature, "content-type": "application/json"}
