"""The workers' settings (with the pipeline settings they use), read from the `WHOLEDOC_*` variables once per
process (`settings()`), and the process's engine, blob store and inference client built from them."""

import hashlib
import hmac
import os
import socket
import uuid
from functools import cache
from typing import Literal

from pydantic import Field, PrivateAttr, SecretStr, field_validator

from pipeline.records.db import make_engine, session_factory
from pipeline.settings import DataSettings, http_url

# NOTE: only for a laptop; anyone holding it can compute every tenant's salt (compose requires a real one)
DEV_CACHE_SALT_SECRET = "wholedoc-dev-cache-salt-secret"


class WorkerSettings(DataSettings):
    """Where the worker finds records, blobs and the inference endpoint, how long its leases last, and the
    Celery app's timings (the beat schedule, Redis's visibility timeout)."""

    EMPTY_OK = frozenset({"cache_salt_secret"})

    inference_url: str | None = Field(None, description="an OpenAI-compatible base URL ending in /v1, http(s)://…")
    inference_api_key: SecretStr | None = Field(None, description="the endpoint's API key")
    model: str = Field("wholedoc", description="the model name the endpoint serves")
    inference_flavor: Literal["auto", "extended", "deepseek"] = Field(
        "auto", description="what the endpoint accepts beyond OpenAI's fields: extended (wholedoc's server, vLLM: "
                            "cache_salt, thinking budgets), deepseek (DeepSeek's API), auto (deepseek for a "
                            "*.deepseek.com URL, else extended)")
    tokenizer: str | None = Field(None, description="a folder or tokenizer.json of the served model's tokenizer "
                                                    "(default: the bundled DeepSeek-V4 tokenizer)")
    inference_max_retries: int = Field(4, ge=0, description="retries, a whole number >= 0: the client's own "
                                                            "(429 / 5xx / timeouts) before the job is requeued")
    result_notice: str | None = Field(None, description="text shown on every result")
    lease_seconds: float = Field(60.0, gt=0, description="seconds, > 0: a lost worker's job is requeued about this "
                                                         "long after its last heartbeat")
    resend_queued_after: float = Field(300.0, gt=0, description="seconds, > 0: a queued job with no worker after "
                                                                "this long gets its message re-sent")
    retry_backoff: float = Field(2.0, ge=0, description="seconds, >= 0, doubled per attempt, capped at 600")
    cache_salt_secret: SecretStr = Field(SecretStr(DEV_CACHE_SALT_SECRET),
                                         description="a random string keying each tenant's prefix-cache salt (empty: "
                                                     "send no cache_salt)")
    visibility_timeout: float = Field(3 * 3600, gt=0, description="seconds, > 0: Redis redelivers an unacked task "
                                                                  "after this")
    reconcile_seconds: float = Field(30, gt=0, description="seconds, > 0, between reconciler runs (beat)")
    # a batch's items count against the same limits as single questions (api.settings reads these variables too)
    max_active_jobs: int = Field(32, ge=0, description="jobs, a whole number >= 0 (0: no cap)")
    max_active_jobs_total: int = Field(0, ge=0, description="jobs, a whole number >= 0 (0: no cap)")
    daily_token_budget: int = Field(0, ge=0, description="tokens, a whole number >= 0 (0: unlimited)")
    batch_docs_in_flight: int = Field(2, ge=1, description="documents, a whole number >= 1: a batch's documents whose "
                                                           "questions run at once (their prefixes stay cached)")
    webhook_poll_seconds: float = Field(5, gt=0, description="seconds, > 0, between polls for due webhook "
                                                             "deliveries (beat)")
    webhook_timeout: float = Field(10, gt=0, description="seconds, > 0: one webhook send's time limit")
    webhook_retry_base: float = Field(10, gt=0, description="seconds, > 0: the first retry's back-off, doubled per "
                                                            "failed attempt")
    webhook_retry_max_gap: float = Field(3600, gt=0, description="seconds, > 0: the longest back-off between two "
                                                                 "attempts")
    webhook_retry_for: float = Field(24 * 3600, gt=0, description="seconds, > 0: how long after its event a "
                                                                  "delivery is retried before it is failed")
    digest_tick_seconds: float = Field(10, gt=0, description="seconds, > 0, between digest scheduler passes (beat): "
                                                             "due schedules become runs, runs advance")
    _nonce: str = PrivateAttr(default_factory=lambda: uuid.uuid4().hex[:8])

    @field_validator("inference_url")
    @classmethod
    def _inference(cls, value: str | None) -> str | None:
        return http_url(value)

    @property
    def owner(self) -> str:
        """This process's lease owner, host:pid:random (the pid read now: a forked child is an owner of its own)."""
        return f"{socket.gethostname()}:{os.getpid()}:{self._nonce}"

    @property
    def tokenizer_path(self) -> str | None:
        return self.tokenizer

    @property
    def heartbeat_seconds(self) -> float:
        return max(self.lease_seconds / 3, 0.2)

    def cache_salt(self, tenant_id: str) -> str | None:
        """The tenant's prefix-cache salt: HMAC-SHA256(secret, tenant id) in hex, so one tenant's requests never hit
        (or time) another's cached prefix, and nobody can derive the salt from a tenant id. None: no secret set."""
        secret = self.cache_salt_secret.get_secret_value()
        if not secret:
            return None
        return hmac.new(secret.encode(), tenant_id.encode(), hashlib.sha256).hexdigest()


@cache
def settings() -> WorkerSettings:
    return WorkerSettings.load()


@cache
def sessions():
    """The process's sessionmaker (one engine per worker process)."""
    return session_factory(make_engine(settings().database_url))


@cache
def blob_store():
    return settings().blob_store()


@cache
def inference_client():
    """The process's inference client (its HTTP connection pool and TLS context are reused across jobs)."""
    from pipeline.client import ClientConfig, InferenceClient

    cfg = settings()
    key = cfg.inference_api_key.get_secret_value() if cfg.inference_api_key else None
    return InferenceClient(ClientConfig(base_url=cfg.inference_url, model=cfg.model, api_key=key,
                                        max_retries=cfg.inference_max_retries, flavor=cfg.inference_flavor))
