"""Per-API-key request rate limit: a token bucket of `burst` tokens refilled at `rate_per_min`.

With a Redis URL the bucket lives in Redis (one hash per key, updated by one Lua script on Redis's own clock),
so every API process shares it; embedded mode (no Redis) keeps it in this process.
"""

import logging
import math
import threading
import time
from dataclasses import dataclass

log = logging.getLogger(__name__)

# KEYS[1] the bucket; ARGV: tokens per second, burst. Returns {allowed (0|1), seconds until a token (string), tokens
# left (string)}.
TAKE_LUA = """
local rate, burst = tonumber(ARGV[1]), tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1]) or burst
local ts = tonumber(state[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - ts) * rate)
local allowed, wait = 0, (1 - tokens) / rate
if tokens >= 1 then
  tokens, allowed, wait = tokens - 1, 1, 0
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return {allowed, tostring(wait), tostring(tokens)}
"""


@dataclass(frozen=True, slots=True)
class Decision:
    """One request's take from its key's bucket; `limit` is None when there is no limit (no RateLimit headers)."""

    allowed: bool
    retry_after: int = 0  # whole seconds until a request would be allowed (>= 1 when refused)
    limit: int | None = None  # the bucket's size (the burst)
    remaining: int = 0  # whole requests left in the bucket now
    reset: int = 0  # whole seconds until the bucket is full again

    def headers(self) -> dict[str, str]:
        """RateLimit-Limit / -Remaining / -Reset (draft-ietf-httpapi-ratelimit-headers), plus Retry-After if refused."""
        if self.limit is None:
            return {}
        out = {"RateLimit-Limit": str(self.limit), "RateLimit-Remaining": str(self.remaining),
               "RateLimit-Reset": str(self.reset)}
        return out | ({"Retry-After": str(self.retry_after)} if not self.allowed else {})


def _check(rate_per_min: float, burst: int) -> None:
    if rate_per_min <= 0 or burst < 1:
        raise ValueError(f"a rate limit needs rate_per_min > 0 and burst >= 1, got {rate_per_min} and {burst}")


def _decision(allowed: bool, wait: float, tokens: float, rate: float, burst: int) -> Decision:
    """What a take left: refused ones wait at least a second; reset counts until the bucket is full."""
    return Decision(allowed, 0 if allowed else max(1, math.ceil(wait)), burst, int(tokens),
                    math.ceil(max(0.0, burst - tokens) / rate))


class LocalBuckets:
    """Buckets in this process (embedded mode: one API process). Thread-safe: sync dependencies run in a pool."""

    def __init__(self, rate_per_min: float, burst: int, clock=time.monotonic):
        _check(rate_per_min, burst)
        self.rate, self.burst, self.clock = rate_per_min / 60, burst, clock
        self.buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, at)
        self.lock = threading.Lock()

    def take(self, key: str) -> Decision:
        with self.lock:
            now = self.clock()
            tokens, at = self.buckets.get(key, (self.burst, now))
            tokens = min(self.burst, tokens + max(0.0, now - at) * self.rate)
            allowed = tokens >= 1
            tokens -= allowed
            self.buckets[key] = (tokens, now)
            return _decision(allowed, (1 - tokens) / self.rate, tokens, self.rate, self.burst)


class RedisBuckets:
    """Buckets in Redis, shared by every API process using the same Redis. If Redis cannot be reached the
    request is let through (logged): the limit protects capacity, it must not take the API down with Redis."""

    PREFIX = "wholedoc:rate:"

    def __init__(self, url: str, rate_per_min: float, burst: int):
        import redis

        _check(rate_per_min, burst)
        self.rate, self.burst = rate_per_min / 60, burst
        self.client = redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1)
        self.script = self.client.register_script(TAKE_LUA)
        self.errors = redis.RedisError

    def take(self, key: str) -> Decision:
        try:
            allowed, wait, tokens = self.script(keys=[self.PREFIX + key], args=[self.rate, self.burst])
        except self.errors:
            log.warning("rate limiter: Redis unavailable, letting the request through", exc_info=True)
            return Decision(True)
        return _decision(bool(int(allowed)), float(wait), float(tokens), self.rate, self.burst)


class Unlimited:
    def take(self, key: str) -> Decision:
        return Decision(True)


def make_limiter(rate_per_min: float, burst: int, redis_url: str | None):
    """Redis buckets when a Redis URL is configured, else in-process ones; `rate_per_min=0` turns the limit off."""
    if rate_per_min <= 0:
        return Unlimited()
    if redis_url:
        return RedisBuckets(redis_url, rate_per_min, burst)
    return LocalBuckets(rate_per_min, burst)
