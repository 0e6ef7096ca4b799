"""Where webhooks may point (pipeline.webhooks.addresses) and the send's own check (pipeline.webhooks.sender): a
loopback, private or link-local address is refused at registration and again when sending (DNS rebinding)."""

import pytest

from pipeline.webhooks.addresses import UnsafeWebhookUrl, check_url, is_public
from pipeline.webhooks.sender import send
from tests.pipeline.webhook_receiver import Receiver


@pytest.mark.parametrize("address", ["127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254",
                                     "100.64.0.1", "0.0.0.0", "::1", "fe80::1", "fc00::1", "::ffff:127.0.0.1",
                                     "224.0.0.1", "240.0.0.1"])
def test_non_public_addresses_are_refused(address):
    assert not is_public(address)


@pytest.mark.parametrize("address", ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111"])
def test_public_addresses_pass(address):
    assert is_public(address)


@pytest.mark.parametrize(("url", "why"), [
    ("http://127.0.0.1:8080/hook", "loopback, private"),
    ("http://localhost/hook", "loopback, private"),
    ("http://[::1]/hook", "loopback, private"),
    ("http://169.254.169.254/latest/meta-data", "loopback, private"),
    ("http://10.0.0.5/hook", "loopback, private"),
    ("ftp://example.com/hook", "not an http:// or https:// URL"),
    ("https://user:pw@example.com/hook", "user name or password"),
    ("http:///hook", "has no host"),
    ("http://no-such-host.invalid/hook", "does not resolve"),
])
def test_registration_refuses_with_a_reason(url, why):
    with pytest.raises(UnsafeWebhookUrl, match=why):
        check_url(url, allow_private=False)


def test_allow_private_lets_loopback_through_but_still_checks_the_shape():
    assert check_url("http://127.0.0.1:8080/hook?x=1", allow_private=True).path == "/hook?x=1"
    with pytest.raises(UnsafeWebhookUrl, match="not an http"):
        check_url("file:///etc/passwd", allow_private=True)


def test_the_send_checks_the_address_again_and_never_connects_to_a_private_one():
    """A name registered while public that now resolves to loopback (DNS rebinding): `localhost` stands in for it.
    The receiver on loopback gets nothing; with private addresses allowed it gets the request."""
    receiver = Receiver()
    try:
        url = receiver.url.replace("127.0.0.1", "localhost")
        refused = send(url, b"{}", {"webhook-id": "msg_1"}, allow_private=False, timeout=5)
        assert refused.status_code is None and "refused" in refused.error and "loopback" in refused.error
        assert receiver.hits == []
        allowed = send(url, b"{}", {"webhook-id": "msg_1"}, allow_private=True, timeout=5)
        assert allowed.ok and len(receiver.hits) == 1
    finally:
        receiver.close()
