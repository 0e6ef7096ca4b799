"""A per-request watchdog: enforces the phase deadlines and the cancel event by shutting the socket down.

Before the first token both caps apply (progress and keep-alive comments prove the server alive, but cannot
stretch the time to first token past `first_token_timeout`); after it, only the idle gap does.
A thread blocked in a socket read (minutes of prefill) cannot poll an event, so the watchdog wakes it: it
captures the connection's socket through httpcore's `trace` extension and calls `shutdown()` on it, which makes
the blocked read return at once; the reader then asks `reason` why its stream broke.
"""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

CANCELLED = "cancelled"
FIRST_TOKEN_TIMEOUT = "first_token_timeout"
IDLE_TIMEOUT = "idle_timeout"


class Watchdog:
    """Use as a context manager around one HTTP attempt; pass `trace` as the request's `trace` extension."""

    POLL = 0.02  # seconds between checks of the cancel event and the deadlines

    def __init__(self, cancel: threading.Event | None, first_token_timeout: float, idle_timeout: float):
        self.cancel = cancel
        self.first_token_timeout = first_token_timeout
        self.idle_timeout = idle_timeout
        self.started = time.monotonic()
        self.last_activity = self.started
        self.streaming = False  # set once bytes (a token or a progress comment) flow: idle gaps count from then
        self.got_token = False  # set at the first data event: the time-to-first-token cap stops applying
        self.reason: str | None = None
        self._sockets: list[socket.socket] = []
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="inference-watchdog", daemon=True)

    def trace(self, event: str, info: dict[str, Any]) -> None:
        """httpcore trace callback: remember the socket of every connection this request opens."""
        if event in ("connection.connect_tcp.complete", "connection.start_tls.complete"):
            stream = info.get("return_value")
            sock = stream.get_extra_info("socket") if stream is not None else None
            if sock is not None:
                self._sockets.append(sock)
                if self.reason is not None:  # fired before the connection existed
                    self._kill()

    def activity(self, *, token: bool = True) -> None:
        """Record that an event arrived (`token`: a data chunk, not a comment); from then on idle gaps count."""
        self.last_activity = time.monotonic()
        self.streaming = True
        self.got_token = self.got_token or token

    def __enter__(self) -> Watchdog:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join(timeout=1.0)

    def _run(self) -> None:
        while not self._done.wait(self.POLL):
            now = time.monotonic()
            if self.cancel is not None and self.cancel.is_set():
                self.reason = CANCELLED
            elif self.streaming and now - self.last_activity > self.idle_timeout:
                self.reason = IDLE_TIMEOUT
            elif not self.got_token and now - self.started > self.first_token_timeout:
                self.reason = FIRST_TOKEN_TIMEOUT
            if self.reason is not None:
                self._kill()
                return

    def _kill(self) -> None:
        for sock in self._sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # already closed
