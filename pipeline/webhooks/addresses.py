"""Where a webhook may point: http(s) URLs whose host resolves only to public addresses. Loopback, private,
link-local (cloud metadata at 169.254.169.254), shared, reserved and multicast addresses are refused when the
webhook is registered and again at every send, on the addresses the send then connects to (a DNS name that
rebinds to 127.0.0.1 after registration is caught there). `WHOLEDOC_WEBHOOK_ALLOW_PRIVATE=1` turns the check off
for private networks and tests."""

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from pipeline.errors import PipelineError

MAX_URL = 2000


class UnsafeWebhookUrl(PipelineError):
    """A webhook URL that is malformed, unresolvable, or reaches a non-public address; the message says which."""


@dataclass(frozen=True)
class Target:
    """A URL taken apart for a send: scheme, host name, port, and the path with its query."""

    scheme: str
    host: str
    port: int
    path: str


def parse(url: str) -> Target:
    """The URL's parts, or UnsafeWebhookUrl naming what is wrong with it."""
    if len(url) > MAX_URL:
        raise UnsafeWebhookUrl(f"the URL is {len(url)} characters long; at most {MAX_URL}")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise UnsafeWebhookUrl(f"{url!r} is not an http:// or https:// URL")
    if parts.username or parts.password:
        raise UnsafeWebhookUrl("the URL may not hold a user name or password; sign-in is the webhook's signature")
    try:
        host, port = parts.hostname, parts.port
    except ValueError as exc:
        raise UnsafeWebhookUrl(f"{url!r}: {exc}") from None
    if not host:
        raise UnsafeWebhookUrl(f"{url!r} has no host")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Target(parts.scheme, host, port or (443 if parts.scheme == "https" else 80), path)


def is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not (ip.is_multicast or ip.is_reserved or ip.is_loopback or ip.is_link_local
                                 or ip.is_private or ip.is_unspecified)


def resolve(host: str, port: int) -> list[str]:
    """Every address `host` resolves to (an IP literal: itself); UnsafeWebhookUrl when it resolves to none."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise UnsafeWebhookUrl(f"the host {host!r} does not resolve ({exc})") from None
    addresses = list(dict.fromkeys(info[4][0] for info in infos))
    if not addresses:
        raise UnsafeWebhookUrl(f"the host {host!r} does not resolve")
    return addresses


def public_addresses(target: Target) -> list[str]:
    """The target's addresses, every one of them public; else UnsafeWebhookUrl naming the first that is not."""
    addresses = resolve(target.host, target.port)
    for address in addresses:
        if not is_public(address):
            raise UnsafeWebhookUrl(
                f"{target.host!r} resolves to {address}, a loopback, private, link-local or reserved address; a "
                "webhook must reach a public address (a private network's deployment can allow them with "
                "WHOLEDOC_WEBHOOK_ALLOW_PRIVATE=1)")
    return addresses


def check_url(url: str, *, allow_private: bool) -> Target:
    """Registration's check: a well-formed http(s) URL that (unless `allow_private`) reaches only public addresses."""
    target = parse(url)
    if not allow_private:
        public_addresses(target)
    return target
