"""Wait on a condition the test can observe, never on a fixed sleep."""

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(predicate: Callable[[], T], timeout: float = 10.0, what: str | Callable[[], str] = "the condition",
               interval: float = 0.05) -> T:
    """Call `predicate` until it returns something truthy and return that; after `timeout` seconds raise
    AssertionError naming `what` (a string, or a callable that describes the last state seen)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what() if callable(what) else what} not reached in {timeout} s")
        time.sleep(interval)
