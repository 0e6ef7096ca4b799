"""Prefix store options: where, how much, how long, and when to write (docs/prefix-store.md#settings)."""

from dataclasses import dataclass

from inference.prefix_store.errors import BadStoreUrl

GIB = 1 << 30


@dataclass(frozen=True)
class PrefixStoreConfig:
    url: str  # file:///folder or s3://bucket?endpoint=host:port&secure=0 (objects under prefixes/)
    access_key: str | None = None  # S3 credentials when the URL carries none (WHOLEDOC_S3_ACCESS_KEY / _SECRET_KEY)
    secret_key: str | None = None
    min_tokens: int = 128  # write snapshots of prefixes at least this long: a restore beats recomputing from one
    # block on `small` on this machine (docs/prefix-store.md#benchmark)
    # a snapshot also keeps the window state at the block boundaries of the prompt's last `tail_tokens` tokens: a
    # later request that leaves the prefix there (another task or question after the same document) restores it
    # with nothing recomputed instead of recomputing the trailing window (one block per layer); 0: only the end's
    tail_tokens: int = 512
    max_bytes: int = 64 * GIB  # size cap of all snapshots; least recently used go first
    max_age_s: float = 7 * 86400.0  # snapshots unused for longer are deleted
    restore_timeout_s: float = 60.0  # a request waits this long for a restore, then computes its prefix itself
    io_timeout_s: float = 30.0  # one store operation (S3 connect/read)
    max_pending_writes: int = 4  # snapshots queued for upload; more are dropped (counted), never waited for
    maintain_every_s: float = 600.0  # eviction pass interval (one process at a time, under the store's lock)

    def __post_init__(self):
        if not self.url or "://" not in self.url:
            raise BadStoreUrl(f"prefix store URL {self.url!r}: use file:///folder or s3://bucket?endpoint=host:port")
        for name in ("min_tokens", "max_bytes", "max_pending_writes"):
            if getattr(self, name) < 1:
                raise BadStoreUrl(f"prefix store {name} must be at least 1, got {getattr(self, name)}")
        if self.tail_tokens < 0:
            raise BadStoreUrl(f"prefix store tail_tokens must be >= 0, got {self.tail_tokens}")
        for name in ("max_age_s", "restore_timeout_s", "io_timeout_s", "maintain_every_s"):
            if getattr(self, name) <= 0:
                raise BadStoreUrl(f"prefix store {name} must be > 0, got {getattr(self, name)}")
