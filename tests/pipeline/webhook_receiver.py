"""A webhook receiver on 127.0.0.1 (a real HTTP server): answers each POST with the next status of its script
(200 once the script is used up), and verifies every request's signature with the `standardwebhooks` library."""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook, WebhookVerificationError


@dataclass
class Hit:
    headers: dict
    body: bytes
    verified: bool
    error: str | None
    payload: dict | None


class Receiver:
    def __init__(self, secret: str | None = None, statuses: tuple[int, ...] = ()):
        self.secret, self.script, self.hits = secret, deque(statuses), []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                headers = {k.lower(): v for k, v in self.headers.items()}
                with receiver.lock:
                    receiver.hits.append(receiver._check(headers, body))
                    status = receiver.script.popleft() if receiver.script else 200
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def _check(self, headers: dict, body: bytes) -> Hit:
        if self.secret is None:
            return Hit(headers, body, False, "no secret to verify with", None)
        try:
            payload = Webhook(self.secret).verify(body, headers)
            return Hit(headers, body, True, None, payload)
        except WebhookVerificationError as exc:
            return Hit(headers, body, False, str(exc), None)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
