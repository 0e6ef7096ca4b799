"""The API's settings: `ApiSettings.load()` at the edge (create_app) reads the `WHOLEDOC_*` variables."""

from typing import Self
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator

from pipeline.settings import DataSettings

DEFAULT_MAX_UPLOAD = 512 * 1024 * 1024
DEFAULT_MAX_JSON = 1024 * 1024
# Generous defaults: a client polling a job 10 times a second stays well inside them.
DEFAULT_RATE_PER_MIN = 1200
DEFAULT_RATE_BURST = 300
DEFAULT_MAX_ACTIVE_JOBS = 32
DEV_SESSION_SECRET = "wholedoc-dev-session-secret"  # NOTE: a public default; set WHOLEDOC_SESSION_SECRET when shared


class ApiSettings(DataSettings):
    """Records, blobs, body limits, limits. `max_upload_bytes` is enforced while streaming (413 names it);
    `max_json_bytes` caps every other request body (413 names it).

    Limits (429 + Retry-After): `rate_per_min` / `rate_burst` per API key (0: off), `max_active_jobs` queued or
    running LLM jobs per tenant (0: no cap), `daily_token_budget` tokens per tenant per UTC day (0: unlimited).
    `max_active_jobs_total` caps queued or running LLM jobs of all tenants together (0: no cap): 503 + Retry-After.
    `redis_url` holds the rate buckets shared by every API process (default: the broker URL when it is Redis);
    None keeps them in this process. `session_secret` / `session_hours`: the web page's sign-in cookie;
    `page_image_max_side`: the cap on a cited page's image (docs/web.md).
    """

    max_upload_bytes: int = Field(DEFAULT_MAX_UPLOAD, ge=1, description="bytes, a whole number >= 1")
    max_json_bytes: int = Field(DEFAULT_MAX_JSON, ge=1, description="bytes, a whole number >= 1")
    sse_poll_seconds: float = Field(0.5, gt=0, le=60, description="seconds, a number > 0 and <= 60")
    rate_per_min: float = Field(DEFAULT_RATE_PER_MIN, ge=0, description="requests a minute per API key, >= 0 (0: off)")
    rate_burst: int = Field(DEFAULT_RATE_BURST, ge=1, description="requests, a whole number >= 1")
    max_active_jobs: int = Field(DEFAULT_MAX_ACTIVE_JOBS, ge=0, description="jobs, a whole number >= 0 (0: no cap)")
    daily_token_budget: int = Field(0, ge=0, description="tokens, a whole number >= 0 (0: unlimited)")
    max_active_jobs_total: int = Field(0, ge=0, description="jobs, a whole number >= 0 (0: no cap)")
    redis_url: str | None = Field(None, description="redis://HOST:PORT/DB or rediss://… (default: the broker URL "
                                                    "when it is Redis, else buckets in the API process)")
    session_secret: SecretStr = Field(SecretStr(DEV_SESSION_SECRET),
                                      description="a random string keying the web page's sign-in cookies and CSRF "
                                                  "tokens (docs/web.md)")
    session_hours: float = Field(12, gt=0, le=24 * 30, description="hours a web sign-in lasts, > 0 and <= 720")
    page_image_max_side: int = Field(1400, ge=200, le=4000, description="pixels, the longer side of a page image "
                                                                        "(200-4000)")

    @field_validator("redis_url")
    @classmethod
    def _redis(cls, value: str | None) -> str | None:
        if value is not None and urlsplit(value).scheme not in ("redis", "rediss"):
            raise ValueError("not a redis:// or rediss:// URL")
        return value

    @model_validator(mode="after")
    def _redis_from_broker(self) -> Self:
        if self.redis_url is None and urlsplit(self.broker_url).scheme in ("redis", "rediss"):
            object.__setattr__(self, "redis_url", self.broker_url)
        return self
