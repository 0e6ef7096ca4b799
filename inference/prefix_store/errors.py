"""Typed errors of the prefix store: a snapshot that must be ignored, a store that cannot be reached."""

from inference.errors import InferenceModelError


class PrefixStoreError(InferenceModelError):
    """Base of the prefix store's errors (never fails a request: the prefix is recomputed)."""


class SnapshotRejected(PrefixStoreError):
    """A stored snapshot is unusable; `reason` is one of REJECT_REASONS (counted in /metrics)."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"snapshot rejected ({reason}): {detail}")
        self.reason = reason


class StoreUnavailable(PrefixStoreError):
    """The folder or bucket failed or did not answer in time."""


class BadStoreUrl(PrefixStoreError):
    """--prefix-store / WHOLEDOC_PREFIX_STORE is not a URL this package can use."""


# why a snapshot was ignored: /metrics label values
REJECT_REASONS = ("truncated", "corrupt", "fingerprint", "chain", "format")
