"""API settings, read from the environment at the edge (create_app)."""

import os
from dataclasses import dataclass

from pipeline.records.db import database_url
from pipeline.storage import blob_store_from_url, blob_url

DEFAULT_MAX_UPLOAD = 512 * 1024 * 1024
# Generous defaults: a client polling a job 10 times a second stays well inside them.
DEFAULT_RATE_PER_MIN = 1200
DEFAULT_RATE_BURST = 300
DEFAULT_MAX_ACTIVE_JOBS = 32


def _redis_url() -> str | None:
    """`WHOLEDOC_REDIS_URL`, else the broker URL when it is Redis; None in embedded mode (SQLAlchemy broker)."""
    url = os.environ.get("WHOLEDOC_REDIS_URL") or os.environ.get("WHOLEDOC_BROKER_URL") or ""
    return url if url.startswith(("redis://", "rediss://")) else None


def _int(name: str, default: int) -> int:
    return int(os.environ.get(name) or default)


@dataclass(frozen=True)
class ApiSettings:
    """Records, blobs, limits. `max_upload_bytes` is enforced while streaming (413 names it).

    Limits (429 + Retry-After): `rate_per_min` / `rate_burst` per API key (0: off), `max_active_jobs` queued or
    running LLM jobs per tenant (0: no cap), `daily_token_budget` tokens per tenant per UTC day (0: unlimited).
    `max_active_jobs_total` caps queued or running LLM jobs of all tenants together (0: no cap): 503 + Retry-After.
    `redis_url` holds the rate buckets shared by every API process; None keeps them in this process.
    """

    database_url: str
    blob_url: str
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD
    sse_poll_seconds: float = 0.5
    rate_per_min: float = DEFAULT_RATE_PER_MIN
    rate_burst: int = DEFAULT_RATE_BURST
    max_active_jobs: int = DEFAULT_MAX_ACTIVE_JOBS
    daily_token_budget: int = 0
    redis_url: str | None = None
    max_active_jobs_total: int = 0

    def __post_init__(self):
        assert self.max_upload_bytes > 0, f"max_upload_bytes={self.max_upload_bytes}"
        assert self.rate_per_min >= 0 and self.rate_burst >= 1, f"rate {self.rate_per_min}/min burst {self.rate_burst}"
        assert min(self.max_active_jobs, self.daily_token_budget, self.max_active_jobs_total) >= 0, (
            self.max_active_jobs, self.daily_token_budget, self.max_active_jobs_total)

    @classmethod
    def from_env(cls) -> "ApiSettings":
        return cls(database_url=database_url(), blob_url=blob_url(),
                   max_upload_bytes=int(os.environ.get("WHOLEDOC_MAX_UPLOAD_BYTES", DEFAULT_MAX_UPLOAD)),
                   sse_poll_seconds=float(os.environ.get("WHOLEDOC_SSE_POLL_SECONDS", 0.5)),
                   rate_per_min=float(os.environ.get("WHOLEDOC_RATE_PER_MIN") or DEFAULT_RATE_PER_MIN),
                   rate_burst=_int("WHOLEDOC_RATE_BURST", DEFAULT_RATE_BURST),
                   max_active_jobs=_int("WHOLEDOC_MAX_ACTIVE_JOBS", DEFAULT_MAX_ACTIVE_JOBS),
                   daily_token_budget=_int("WHOLEDOC_DAILY_TOKEN_BUDGET", 0), redis_url=_redis_url(),
                   max_active_jobs_total=_int("WHOLEDOC_MAX_ACTIVE_JOBS_TOTAL", 0))

    def blob_store(self):
        return blob_store_from_url(self.blob_url)
