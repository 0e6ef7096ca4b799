"""Retry timing: exponential backoff with jitter, and the server's Retry-After hint."""

from __future__ import annotations

import email.utils
import random
import time

from pipeline.client.config import ClientConfig


def backoff_delay(config: ClientConfig, retry: int, rng: random.Random | None = None) -> float:
    """Seconds to wait before retry number `retry` (1-based): base·2^(retry-1), capped, jittered into [½, 1]×."""
    ceiling = min(config.backoff_max, config.backoff_base * 2 ** (retry - 1))
    return ceiling * (0.5 + 0.5 * (rng or random).random())


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """A Retry-After header in seconds (delta-seconds or an HTTP date); None when missing or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))
