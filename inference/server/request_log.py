"""Logs the X-Request-Id of every request the server receives (INFO, logger `inference.server`), so that one
wholedoc job can be followed into this process: its worker sends `job-<job id>-<attempt>` as the id."""

from __future__ import annotations

import logging

log = logging.getLogger("inference.server")


class RequestIdLog:
    """A pure ASGI wrapper: it only reads the headers, never the body or the response (streams pass untouched)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            rid = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"x-request-id"), None)
            if rid:
                log.info("request_id=%s %s %s", rid, scope["method"], scope["path"], extra={"request_id": rid})
        await self.app(scope, receive, send)
