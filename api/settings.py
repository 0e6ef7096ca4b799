"""API settings, read from the environment at the edge (create_app)."""

import os
from dataclasses import dataclass

from pipeline.records.db import database_url
from pipeline.storage import blob_store_from_url

DEFAULT_MAX_UPLOAD = 512 * 1024 * 1024


def _blob_url() -> str:
    from pipeline.records.db import wholedoc_home

    return os.environ.get("WHOLEDOC_BLOB_URL") or f"file://{wholedoc_home() / 'blobs'}"


@dataclass(frozen=True)
class ApiSettings:
    """Records, blobs, limits. `max_upload_bytes` is enforced while streaming (413 names it)."""

    database_url: str
    blob_url: str
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD
    sse_poll_seconds: float = 0.5

    def __post_init__(self):
        assert self.max_upload_bytes > 0, f"max_upload_bytes={self.max_upload_bytes}"

    @classmethod
    def from_env(cls) -> "ApiSettings":
        return cls(database_url=database_url(), blob_url=_blob_url(),
                   max_upload_bytes=int(os.environ.get("WHOLEDOC_MAX_UPLOAD_BYTES", DEFAULT_MAX_UPLOAD)),
                   sse_poll_seconds=float(os.environ.get("WHOLEDOC_SSE_POLL_SECONDS", 0.5)))

    def blob_store(self):
        return blob_store_from_url(self.blob_url)
