"""The blob store interface: content-addressed blobs under a tenant prefix, with reference tracking.

Keys look like `tenants/<tenant>/blobs/sha256/<hex>`. Identical uploads share one blob, so a blob is
deleted only when its last owner releases it (`add_ref` / `release`), or by `sweep` from the database's
list of referenced keys (the database is the system of record; `sweep` repairs any drift).
`release` racing an `add_ref` of the same blob can delete a blob just referenced; callers that can race
re-upload (`put_*` is idempotent) or rely on `sweep` with the database's references instead.
"""

import hashlib
import re
import shutil
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import BinaryIO

from pipeline.errors import BlobTooLarge, IntegrityError, InvalidBlobKey, StorageUnavailable

CHUNK = 1 << 20
MAX_PRESIGN = timedelta(days=7)  # SigV4's limit
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_KEY = re.compile(r"^tenants/([A-Za-z0-9][A-Za-z0-9._-]{0,127})/blobs/sha256/([0-9a-f]{64})$")


@dataclass(frozen=True)
class BlobRef:
    """A stored blob: its key, the sha256 of its bytes (hex) and its size in bytes."""

    key: str
    sha256: str
    size: int


def check_id(value: str, what: str = "tenant id") -> str:
    """A tenant or owner id: 1-128 of [A-Za-z0-9._-], starting alphanumeric (so never `..` or a path)."""
    if not isinstance(value, str) or not _ID.match(value):
        raise InvalidBlobKey(f"invalid {what} {value!r}: use 1-128 of A-Z a-z 0-9 . _ - (first alphanumeric)")
    return value


def blob_key(tenant: str, sha256: str) -> str:
    return f"tenants/{check_id(tenant)}/blobs/sha256/{sha256}"


def parse_key(key: str) -> tuple[str, str]:
    """(tenant, sha256) of a blob key; anything else is an `InvalidBlobKey`."""
    m = _KEY.match(key) if isinstance(key, str) else None
    if not m:
        raise InvalidBlobKey(f"not a blob key: {key!r} (expected tenants/<tenant>/blobs/sha256/<64 hex>)")
    return m.group(1), m.group(2)


def check_expiry(expires: timedelta) -> timedelta:
    if not timedelta(seconds=1) <= expires <= MAX_PRESIGN:
        raise InvalidBlobKey(f"presigned URL expiry {expires} must be between 1 s and 7 days")
    return expires


def spool(stream: BinaryIO, max_bytes: int | None, spool_dir: str | None = None) -> tuple[BinaryIO, str, int]:
    """Copy `stream` into a temp file while hashing; over `max_bytes` → `BlobTooLarge`, temp file dropped."""
    tmp = tempfile.TemporaryFile(dir=spool_dir)
    h, size = hashlib.sha256(), 0
    try:
        while chunk := stream.read(CHUNK):
            size += len(chunk)
            if max_bytes is not None and size > max_bytes:
                raise BlobTooLarge(f"upload is over the limit of {max_bytes} bytes; nothing was kept")
            h.update(chunk)
            tmp.write(chunk)
        tmp.seek(0)
    except BaseException:
        tmp.close()
        raise
    return tmp, h.hexdigest(), size


class VerifyingReader:
    """A read-only stream that hashes what it hands out and raises `IntegrityError` at the end on a mismatch."""

    def __init__(self, raw: BinaryIO, key: str, expected: str, on_close=None, transport_errors: tuple = ()):
        self._raw, self._key, self._expected, self._on_close = raw, key, expected, on_close
        self._errors = transport_errors  # raised by `raw` when the connection drops → StorageUnavailable
        self._h = hashlib.sha256()
        self._done = False

    def read(self, n: int = -1) -> bytes:
        try:
            data = self._raw.read() if n is None or n < 0 else self._raw.read(n)
        except self._errors as e:
            raise StorageUnavailable(f"reading blob {self._key} failed: {e}") from e
        self._h.update(data)
        if not data or n is None or n < 0:
            self._finish()
        return data

    def _finish(self) -> None:
        if not self._done:
            self._done = True
            got = self._h.hexdigest()
            if got != self._expected:
                raise IntegrityError(f"blob {self._key} is corrupt: its bytes hash to {got}, not {self._expected}")

    def __iter__(self) -> Iterator[bytes]:
        while chunk := self.read(CHUNK):
            yield chunk

    def close(self) -> None:
        self._raw.close()
        if self._on_close:
            self._on_close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class BlobStore(ABC):
    """Content-addressed blob storage for one deployment (a bucket or a folder)."""

    @abstractmethod
    def put_stream(self, tenant: str, stream: BinaryIO, *, max_bytes: int | None = None) -> BlobRef:
        """Store `stream` under its sha256; an existing identical blob is reused. Over `max_bytes` → `BlobTooLarge`."""

    def put_bytes(self, tenant: str, data: bytes, *, max_bytes: int | None = None) -> BlobRef:
        import io

        return self.put_stream(tenant, io.BytesIO(data), max_bytes=max_bytes)

    @abstractmethod
    def open(self, key: str) -> VerifyingReader:
        """A stream of the blob; reading it to the end raises `IntegrityError` if its bytes don't match the key."""

    def get_bytes(self, key: str) -> bytes:
        with self.open(key) as r:
            return r.read()

    def copy_to(self, key: str, dst: BinaryIO) -> int:
        """Stream the verified blob into `dst`; returns the byte count."""
        n = 0
        with self.open(key) as r:
            for chunk in r:
                dst.write(chunk)
                n += len(chunk)
        return n

    @abstractmethod
    def exists(self, key: str) -> bool: ...

    @abstractmethod
    def presigned_get(self, key: str, expires: timedelta = timedelta(minutes=15)) -> str:
        """A URL from which the blob can be fetched until `expires` (at most 7 days)."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove the blob now, whoever references it (idempotent). Prefer `release`."""

    @abstractmethod
    def add_ref(self, key: str, owner: str) -> None:
        """Record that `owner` (e.g. a document id) uses the blob; idempotent."""

    @abstractmethod
    def owners(self, key: str) -> list[str]:
        """The owners recorded for the blob, sorted."""

    @abstractmethod
    def _drop_ref(self, key: str, owner: str) -> None: ...

    @abstractmethod
    def list_blobs(self, tenant: str) -> Iterable[tuple[str, float]]:
        """(key, age in seconds) of every blob of `tenant`."""

    def release(self, key: str, owner: str) -> bool:
        """Drop `owner`'s reference; delete the blob when no owner is left. Returns whether it was deleted."""
        parse_key(key)
        check_id(owner, "owner id")
        self._drop_ref(key, owner)
        if self.owners(key):
            return False
        self.delete(key)
        return True

    def sweep(self, tenant: str, referenced: set[str], *, min_age: timedelta = timedelta(hours=1)) -> list[str]:
        """Delete the tenant's blobs that are not in `referenced` and older than `min_age`; returns the deleted keys.

        `min_age` protects uploads whose database row is not written yet.
        """
        gone = []
        for key, age in self.list_blobs(tenant):
            if key not in referenced and age >= min_age.total_seconds():
                self.delete(key)
                gone.append(key)
        return sorted(gone)


def copy_file(src: BinaryIO, dst: BinaryIO) -> None:
    shutil.copyfileobj(src, dst, CHUNK)
