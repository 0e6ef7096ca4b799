"""Worker settings, read from the environment once per process."""

import hashlib
import hmac
import os
import socket
import uuid
from dataclasses import dataclass, field
from functools import cache

from pipeline.records.db import database_url, make_engine, session_factory
from pipeline.storage import blob_url

# NOTE: only for a laptop; anyone holding it can compute every tenant's salt (compose requires a real one)
DEV_CACHE_SALT_SECRET = "wholedoc-dev-cache-salt-secret"


def _f(name: str, default: float) -> float:
    return float(os.environ.get(name, default))


@dataclass(frozen=True)
class WorkerSettings:
    """Where the worker finds records, blobs and the inference endpoint, and how long its leases last."""

    database_url: str
    blob_url: str
    inference_url: str | None
    model: str
    tokenizer_path: str | None
    inference_api_key: str | None = None
    inference_max_retries: int = 4  # the client's own retries (429 / 5xx / timeouts) before the job is requeued
    result_notice: str | None = None  # shown on every result, e.g. "random-weight dev checkpoint: not meaningful"
    lease_seconds: float = 60.0  # a lost worker's job is requeued about this long after its last heartbeat
    resend_queued_after: float = 300.0  # a queued job with no worker after this long gets its message re-sent
    retry_backoff: float = 2.0  # seconds, doubled per attempt, capped at 600
    cache_salt_secret: str = DEV_CACHE_SALT_SECRET  # "" sends no cache_salt (endpoints that refuse unknown fields)
    owner: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}")

    @property
    def heartbeat_seconds(self) -> float:
        return max(self.lease_seconds / 3, 0.2)

    def cache_salt(self, tenant_id: str) -> str | None:
        """The tenant's prefix-cache salt: HMAC-SHA256(secret, tenant id) in hex, so one tenant's requests never hit
        (or time) another's cached prefix, and nobody can derive the salt from a tenant id. None: no secret set."""
        if not self.cache_salt_secret:
            return None
        return hmac.new(self.cache_salt_secret.encode(), tenant_id.encode(), hashlib.sha256).hexdigest()


@cache
def settings() -> WorkerSettings:
    return WorkerSettings(
        database_url=database_url(),
        blob_url=blob_url(),
        inference_url=os.environ.get("WHOLEDOC_INFERENCE_URL"),
        model=os.environ.get("WHOLEDOC_MODEL", "wholedoc"),
        tokenizer_path=os.environ.get("WHOLEDOC_TOKENIZER"),
        result_notice=os.environ.get("WHOLEDOC_RESULT_NOTICE"),
        inference_api_key=os.environ.get("WHOLEDOC_INFERENCE_API_KEY"),
        inference_max_retries=int(os.environ.get("WHOLEDOC_INFERENCE_MAX_RETRIES", 4)),
        lease_seconds=_f("WHOLEDOC_LEASE_SECONDS", 60),
        resend_queued_after=_f("WHOLEDOC_RESEND_QUEUED_AFTER", 300),
        retry_backoff=_f("WHOLEDOC_RETRY_BACKOFF", 2),
        cache_salt_secret=os.environ.get("WHOLEDOC_CACHE_SALT_SECRET", DEV_CACHE_SALT_SECRET),
    )


@cache
def sessions():
    """The process's sessionmaker (one engine per worker process)."""
    return session_factory(make_engine(settings().database_url))


@cache
def blob_store():
    from pipeline.storage import blob_store_from_url

    return blob_store_from_url(settings().blob_url)


@cache
def inference_client():
    """The process's inference client (its HTTP connection pool and TLS context are reused across jobs)."""
    from pipeline.client import ClientConfig, InferenceClient

    cfg = settings()
    return InferenceClient(ClientConfig(base_url=cfg.inference_url, model=cfg.model, api_key=cfg.inference_api_key,
                                        max_retries=cfg.inference_max_retries))
