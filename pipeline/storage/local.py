"""A blob store in a local folder: the embedded default. Same layout as the bucket, atomic renames."""

import errno
import os
import time
from collections.abc import Iterable
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import BinaryIO

from pipeline.errors import BlobNotFound, StorageFull
from pipeline.storage.base import (
    BlobRef,
    BlobStore,
    VerifyingReader,
    blob_key,
    check_expiry,
    check_id,
    copy_file,
    parse_key,
    spool,
)

FULL = (errno.ENOSPC, errno.EDQUOT)


@contextmanager
def _disk(what: str):
    """A full disk while writing is StorageFull naming the operation (the partial file is already removed)."""
    try:
        yield
    except OSError as e:
        if e.errno in FULL:
            raise StorageFull(f"{what}: the blob folder is full ({os.strerror(e.errno)}); nothing was kept, free "
                              "space and retry") from e
        raise


class LocalBlobStore(BlobStore):
    """Blobs at `<root>/tenants/<t>/blobs/sha256/<hex>`; owner markers at `…/refs/sha256/<hex>/<owner>`.

    `presigned_get` returns a `file://` URL: a local folder has no server to check a signature or an expiry,
    so the URL is only good for processes on this machine (the API streams blobs itself in embedded mode).
    """

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root).resolve()
        self._tmp = self.root / "tmp"
        self._tmp.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        parse_key(key)  # strict pattern: no `..`, no absolute parts
        return self.root / key

    def _refs(self, key: str) -> Path:
        tenant, sha = parse_key(key)
        return self.root / "tenants" / tenant / "refs" / "sha256" / sha

    def put_stream(self, tenant: str, stream: BinaryIO, *, max_bytes: int | None = None) -> BlobRef:
        check_id(tenant)
        with _disk(f"storing a blob of {tenant}"):
            return self._put(tenant, stream, max_bytes)

    def _put(self, tenant: str, stream: BinaryIO, max_bytes: int | None) -> BlobRef:
        tmp, sha, size = spool(stream, max_bytes, str(self._tmp))
        with tmp:
            ref = BlobRef(blob_key(tenant, sha), sha, size)
            path = self._path(ref.key)
            if path.is_file() and path.stat().st_size == size:
                return ref
            path.parent.mkdir(parents=True, exist_ok=True)
            part = self._tmp / f"{sha}.{os.getpid()}.{time.monotonic_ns()}.part"
            try:
                with open(part, "wb") as out:
                    copy_file(tmp, out)
                    out.flush()
                    os.fsync(out.fileno())
                os.replace(part, path)
            finally:
                part.unlink(missing_ok=True)
        return ref

    def open(self, key: str) -> VerifyingReader:
        _, sha = parse_key(key)
        try:
            raw = open(self._path(key), "rb")
        except FileNotFoundError:
            raise BlobNotFound(f"no blob {key}") from None
        return VerifyingReader(raw, key, sha)

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def presigned_get(self, key: str, expires: timedelta = timedelta(minutes=15)) -> str:
        check_expiry(expires)
        path = self._path(key)
        if not path.is_file():
            raise BlobNotFound(f"no blob {key}")
        return path.as_uri()

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)
        refs = self._refs(key)
        if refs.is_dir():
            for marker in refs.iterdir():
                marker.unlink(missing_ok=True)
            refs.rmdir()

    def add_ref(self, key: str, owner: str) -> None:
        check_id(owner, "owner id")
        if not self.exists(key):
            raise BlobNotFound(f"no blob {key} to reference")
        refs = self._refs(key)
        refs.mkdir(parents=True, exist_ok=True)
        (refs / owner).touch()

    def owners(self, key: str) -> list[str]:
        refs = self._refs(key)
        return sorted(p.name for p in refs.iterdir()) if refs.is_dir() else []

    def _drop_ref(self, key: str, owner: str) -> None:
        (self._refs(key) / owner).unlink(missing_ok=True)

    def sweep(self, tenant: str, referenced: set[str], *, min_age: timedelta = timedelta(hours=1)) -> list[str]:
        """As `BlobStore.sweep`; also drops partial writes a crashed process left in `tmp/` over `min_age` ago."""
        cutoff = time.time() - min_age.total_seconds()
        for part in self._tmp.glob("*.part"):
            try:
                if part.stat().st_mtime <= cutoff:
                    part.unlink()
            except FileNotFoundError:
                pass
        return super().sweep(tenant, referenced, min_age=min_age)

    def list_blobs(self, tenant: str) -> Iterable[tuple[str, float]]:
        base = self.root / "tenants" / check_id(tenant) / "blobs" / "sha256"
        if not base.is_dir():
            return []
        now = time.time()
        return [(blob_key(tenant, p.name), now - p.stat().st_mtime) for p in sorted(base.iterdir())]
