"""Processes on loopback, for the benches and the embedded stack: a free port, and waiting for a health URL."""

import socket
import time
from collections.abc import Callable

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float = 30, *, alive: Callable[[], None] | None = None,
              interval: float = 0.05) -> None:
    """Until GET url answers 200; RuntimeError when `timeout` seconds pass first. `alive`, called before each try,
    raises to give up early (the process that should answer has exited)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if alive is not None:
            alive()
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(interval)
    raise RuntimeError(f"{url} did not come up in {timeout:.0f} s")
