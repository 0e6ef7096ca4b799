"""A small real OpenAI-compatible HTTP server on 127.0.0.1 that injects faults on a script.

Each POST /v1/chat/completions takes the next `Reply` from `script` (the default reply when it is empty):
a status with headers (429 + Retry-After, 5xx), a hang before answering, progress comments, a stream dropped
after N chunks, reasoning deltas, usage in OpenAI or DeepSeek spelling. With `wholedoc=True` it also serves
/v1/requests/{id} (GET, DELETE), /v1/cache/probe, /v1/tokenize and `max_model_len` in /v1/models; without, 404.
Every request is recorded in `received`.
"""

from __future__ import annotations

import json
import socket
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

OPENAI_USAGE = {"prompt_tokens": 100, "completion_tokens": 2, "total_tokens": 102,
                "prompt_tokens_details": {"cached_tokens": 64}}


@dataclass
class Reply:
    status: int = 200
    headers: dict = field(default_factory=dict)
    error: str = "injected fault"
    error_code: str | None = None
    content: tuple[str, ...] = ("Hello", " world")
    reasoning: tuple[str, ...] = ()
    reasoning_field: str = "reasoning_content"
    usage: dict | None = field(default_factory=lambda: dict(OPENAI_USAGE))
    progress: tuple[tuple[int, int], ...] = ()  # (done, total) comments before the first token
    hang: float = 0.0  # seconds to wait before the status line (a cancel or shutdown ends it early)
    chunk_delay: float = 0.0
    drop_after: int | None = None  # close the connection abruptly after this many content chunks
    end_after: int | None = None  # end the HTTP body cleanly after this many content chunks: no finish, no [DONE]
    finish_reason: str = "stop"


@dataclass
class Received:
    method: str
    path: str
    headers: dict
    body: dict | None
    at: float


class FaultServer:
    def __init__(self, *, wholedoc: bool = True, model: str = "deepseek-v4-flash"):
        self.wholedoc, self.model = wholedoc, model
        self.script: deque[Reply] = deque()
        self.default = Reply()
        self.received: list[Received] = []
        self.cancelled: dict[str, threading.Event] = {}
        self.states: dict[str, dict] = {}
        self.probe = {"prompt_tokens": 1000, "cached_tokens": 900, "tokens_to_compute": 100}
        self.token_count = 1234
        self.stop = threading.Event()
        self.errors: list[BaseException] = []  # handler failures other than a client hanging up
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.httpd.daemon_threads = True
        self.httpd.handle_error = self._handle_error
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def paths(self, method: str | None = None) -> list[str]:
        return [r.path for r in self.received if method is None or r.method == method]

    def _handle_error(self, request, client_address) -> None:
        error = sys.exc_info()[1]
        if not isinstance(error, OSError):  # a client that went away (cancel, timeout) is expected here
            self.errors.append(error)

    def close(self) -> None:
        self.stop.set()
        self.httpd.shutdown()
        self.httpd.server_close()


def _handler(server: FaultServer):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):  # quiet
            pass

        def _record(self) -> dict | None:
            n = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(n) if n else b""
            body = json.loads(raw) if raw else None
            server.received.append(Received(self.command, self.path, dict(self.headers), body, time.monotonic()))
            return body

        def _json(self, status: int, obj: object, headers: dict | None = None) -> None:
            data = json.dumps(obj).encode()
            self.send_response(status)
            for k, v in (headers or {}).items():
                self.send_header(k, str(v))
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _chunk(self, text: str) -> None:
            data = text.encode()
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()

        def do_GET(self):
            self._record()
            if self.path == "/v1/models":
                entry = {"id": server.model, "object": "model"}
                if server.wholedoc:
                    entry["max_model_len"] = 1_048_576
                return self._json(200, {"object": "list", "data": [entry]})
            if server.wholedoc and self.path.startswith("/v1/requests/"):
                rid = self.path.rsplit("/", 1)[1]
                if rid in server.states:
                    return self._json(200, server.states[rid])
            self._json(404, {"error": {"message": "not found"}})

        def do_DELETE(self):
            self._record()
            rid = self.path.rsplit("/", 1)[1]
            if server.wholedoc and self.path.startswith("/v1/requests/") and rid in server.states:
                server.cancelled.setdefault(rid, threading.Event()).set()
                server.states[rid]["state"] = "cancelled"
                return self._json(200, {"id": rid, "state": "cancelled"})
            self._json(404, {"error": {"message": "not found"}})

        def do_POST(self):
            body = self._record()
            if server.wholedoc and self.path == "/v1/cache/probe":
                return self._json(200, server.probe)
            if server.wholedoc and self.path == "/v1/tokenize":
                return self._json(200, {"count": server.token_count})
            if self.path != "/v1/chat/completions":
                return self._json(404, {"error": {"message": "not found"}})
            reply = server.script.popleft() if server.script else server.default
            rid = self.headers.get("X-Request-Id") or "anon"
            cancel = server.cancelled.setdefault(rid, threading.Event())
            server.states[rid] = {"id": rid, "state": "prefill", "prefill_tokens_done": 0,
                                  "prefill_tokens_total": 100, "tokens_generated": 0, "cached_tokens": 0}
            deadline = time.monotonic() + reply.hang
            while time.monotonic() < deadline and not (server.stop.is_set() or cancel.is_set()):
                time.sleep(0.01)
            if reply.status != 200:
                err = {"message": reply.error} | ({"code": reply.error_code} if reply.error_code else {})
                return self._json(reply.status, {"error": err}, reply.headers)
            if not body.get("stream"):
                message = {"role": "assistant", "content": "".join(reply.content)}
                if reply.reasoning:
                    message[reply.reasoning_field] = "".join(reply.reasoning)
                return self._json(200, {"id": rid, "object": "chat.completion", "model": server.model,
                                        "choices": [{"index": 0, "message": message,
                                                     "finish_reason": reply.finish_reason}],
                                        "usage": reply.usage}, {"X-Request-Id": rid})
            self._stream(body, reply, rid, cancel)

        def _stream(self, body: dict, reply: Reply, rid: str, cancel: threading.Event) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.send_header("X-Request-Id", rid)
            self.end_headers()
            try:
                for done, total in reply.progress:
                    self._chunk(f': progress {{"prefill_tokens_done": {done}, "prefill_tokens_total": {total}}}\n\n')
                    time.sleep(reply.chunk_delay)
                deltas = [(reply.reasoning_field, t) for t in reply.reasoning] + [("content", t) for t in reply.content]
                sent = 0
                for key, text in deltas:
                    if cancel.is_set() or server.stop.is_set():
                        break
                    if key == "content" and reply.drop_after is not None and sent >= reply.drop_after:
                        self.connection.shutdown(socket.SHUT_RDWR)  # drop mid-stream, no terminating chunk
                        return
                    if key == "content" and reply.end_after is not None and sent >= reply.end_after:
                        self.wfile.write(b"0\r\n\r\n")  # a well-formed but truncated stream
                        return
                    chunk = {"id": rid, "object": "chat.completion.chunk", "model": server.model,
                             "choices": [{"index": 0, "delta": {key: text}, "finish_reason": None}], "usage": None}
                    self._chunk(f"data: {json.dumps(chunk)}\n\n")
                    sent += key == "content"
                    server.states[rid]["tokens_generated"] = sent
                    time.sleep(reply.chunk_delay)
                if cancel.is_set():
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                # finished before the last chunk leaves, as a server's engine finishes a request before its stream
                # ends: a client that asks right after [DONE] must not see it still running
                server.states[rid]["state"] = "finished"
                last = {"id": rid, "object": "chat.completion.chunk", "model": server.model,
                        "choices": [{"index": 0, "delta": {}, "finish_reason": reply.finish_reason}], "usage": None}
                self._chunk(f"data: {json.dumps(last)}\n\n")
                if (body.get("stream_options") or {}).get("include_usage") and reply.usage is not None:
                    self._chunk(f"data: {json.dumps({'id': rid, 'choices': [], 'usage': reply.usage})}\n\n")
                self._chunk("data: [DONE]\n\n")
                self.wfile.write(b"0\r\n\r\n")
            except OSError:
                pass  # the client went away

    return Handler
