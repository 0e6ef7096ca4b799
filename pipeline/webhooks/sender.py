"""One HTTP POST of a signed delivery. Unless private addresses are allowed, the host is resolved and checked
(pipeline.webhooks.addresses) right before the send and the connection goes to the checked address itself, so the
name cannot rebind to another one in between; redirects are never followed."""

from dataclasses import dataclass

import httpx

from pipeline.webhooks.addresses import UnsafeWebhookUrl, check_url, public_addresses

ERROR_CHARS = 500


@dataclass(frozen=True)
class SendOutcome:
    """What one attempt got: the HTTP status (None: no answer) and, when it did not succeed, why."""

    status_code: int | None
    error: str | None

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def send(url: str, body: bytes, headers: dict[str, str], *, allow_private: bool, timeout: float) -> SendOutcome:
    try:
        target = check_url(url, allow_private=True)  # its shape only: the addresses are checked just below
        extensions = {}
        if not allow_private:
            address = public_addresses(target)[0]
            host = f"[{address}]" if ":" in address else address
            url = f"{target.scheme}://{host}:{target.port}{target.path}"
            default = 443 if target.scheme == "https" else 80
            headers = {**headers, "host": target.host if target.port == default else f"{target.host}:{target.port}"}
            if target.scheme == "https":
                extensions["sni_hostname"] = target.host  # the certificate is checked against the name, not the IP
    except UnsafeWebhookUrl as exc:
        return SendOutcome(None, f"refused: {exc}")
    try:
        with httpx.Client(timeout=timeout, follow_redirects=False, trust_env=False) as client:
            r = client.post(url, content=body, headers=headers, extensions=extensions)
    except httpx.HTTPError as exc:
        return SendOutcome(None, f"{type(exc).__name__}: {exc}"[:ERROR_CHARS])
    if 200 <= r.status_code < 300:
        return SendOutcome(r.status_code, None)
    return SendOutcome(r.status_code, f"HTTP {r.status_code}: {r.text[:200]}"[:ERROR_CHARS])
