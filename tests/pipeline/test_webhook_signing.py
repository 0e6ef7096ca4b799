"""Standard Webhooks signatures: what we send verifies with the specification's own library; a changed body, id or
secret does not."""

import base64
from datetime import UTC, datetime

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from pipeline.webhooks.signing import body_bytes, new_secret, signed_headers


def test_a_signed_body_verifies_with_the_library():
    secret = new_secret()
    assert secret.startswith("whsec_") and len(base64.b64decode(secret.removeprefix("whsec_"))) == 32
    payload = {"type": "job.done", "timestamp": "2026-12-07T12:00:00Z", "data": {"job_id": "j", "note": "é"}}
    body = body_bytes(payload)
    headers = signed_headers(secret, "msg_abc", body)
    assert headers["webhook-id"] == "msg_abc" and headers["webhook-signature"].startswith("v1,")
    assert Webhook(secret).verify(body, headers) == payload


def test_tampering_fails_verification():
    secret, body = new_secret(), body_bytes({"type": "job.done", "data": {}})
    headers = signed_headers(secret, "msg_abc", body)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body.replace(b"done", b"fail"), headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body, headers | {"webhook-id": "msg_other"})
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(body, headers)


def test_the_same_payload_is_the_same_bytes_and_the_timestamp_is_the_attempts():
    secret = new_secret()
    assert body_bytes({"b": 1, "a": 2}) == body_bytes({"a": 2, "b": 1})
    at = datetime(2026, 12, 7, 12, 0, 0, tzinfo=UTC)
    assert signed_headers(secret, "msg_1", b"{}", at)["webhook-timestamp"] == str(int(at.timestamp()))
