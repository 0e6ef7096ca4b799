"""api.loopback.wait_http against a real HTTP server on loopback: it returns once the URL answers 200, gives up
early when `alive` raises (the process that should answer exited), and raises after its timeout otherwise."""

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from api.loopback import free_port, wait_http


class _Health(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (http.server's name)
        self.send_response(200 if self.path == "/health" else 503)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_returns_when_the_url_answers_200_and_keeps_trying_until_then():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Health)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        wait_http(f"{base}/health", 5)
        with pytest.raises(RuntimeError, match="did not come up in 0 s"):
            wait_http(f"{base}/busy", 0.3)  # answers, but 503
    finally:
        server.shutdown()
        server.server_close()


def test_alive_raising_stops_the_wait_before_its_timeout():
    calls = []

    def exited():
        calls.append(1)
        if len(calls) == 3:
            raise ChildProcessError("the server exited with 1")

    with pytest.raises(ChildProcessError, match="exited with 1"):
        wait_http(f"http://127.0.0.1:{free_port()}/health", 30, alive=exited, interval=0.01)
    assert len(calls) == 3
