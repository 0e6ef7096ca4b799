"""Where snapshots live: a local folder (embedded mode) or an S3 bucket through the `minio` client (MinIO in
compose, moto's server in tests). Both expose the same few object operations; names are `/`-separated keys
under `prefixes/` (docs/prefix-store.md#layout)."""

from __future__ import annotations

import io
import os
import time
from abc import ABC, abstractmethod
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse

from inference.prefix_store.errors import BadStoreUrl, StoreUnavailable


@dataclass(frozen=True)
class ObjectInfo:
    name: str
    size: int
    mtime: float  # seconds since the epoch (S3: LastModified)


class NotFound(StoreUnavailable):
    """The object is not there (deleted meanwhile: the caller treats it as a miss)."""


class Backend(ABC):
    """Object operations the prefix store needs; every failure is StoreUnavailable (NotFound when missing)."""

    @abstractmethod
    def put(self, name: str, data: bytes) -> None: ...

    @abstractmethod
    def get(self, name: str, offset: int = 0, length: int | None = None) -> bytes: ...

    @abstractmethod
    def list(self, prefix: str) -> list[ObjectInfo]:
        """Every object whose name starts with `prefix` (recursively)."""

    @abstractmethod
    def delete(self, name: str) -> None:
        """Idempotent."""

    @abstractmethod
    def create_exclusive(self, name: str, data: bytes) -> bool:
        """Write `name` only if it does not exist; whether this call created it."""

    def describe(self) -> str:
        return type(self).__name__


class FolderBackend(Backend):
    """Objects as files under `root` (atomic renames; mtime is the last write or use)."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def _path(self, name: str) -> Path:
        if name.startswith("/") or ".." in name.split("/"):
            raise StoreUnavailable(f"bad object name {name!r}")
        return self.root / name

    @contextmanager
    def _io(self, what: str):
        try:
            yield
        except FileNotFoundError:
            raise NotFound(f"{what}: not found") from None
        except OSError as e:
            raise StoreUnavailable(f"{what} failed: {e}") from e

    def put(self, name: str, data: bytes) -> None:
        path = self._path(name)
        with self._io(f"writing {name}"):
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.{os.getpid()}.{time.monotonic_ns()}.tmp")
            tmp.write_bytes(data)
            os.replace(tmp, path)

    def get(self, name: str, offset: int = 0, length: int | None = None) -> bytes:
        with self._io(f"reading {name}"), open(self._path(name), "rb") as f:
            f.seek(offset)
            return f.read() if length is None else f.read(length)

    def list(self, prefix: str) -> list[ObjectInfo]:
        base = self._path(prefix.rsplit("/", 1)[0]) if "/" in prefix else self.root
        out = []
        with self._io(f"listing {prefix}"):
            if not base.exists():
                return []
            for dirpath, _, files in os.walk(base):
                for f in files:
                    if f.startswith("."):
                        continue  # a write in progress
                    p = Path(dirpath) / f
                    name = p.relative_to(self.root).as_posix()
                    if name.startswith(prefix):
                        try:
                            st = p.stat()
                        except FileNotFoundError:
                            continue
                        out.append(ObjectInfo(name, st.st_size, st.st_mtime))
        return out

    def delete(self, name: str) -> None:
        try:
            self._path(name).unlink()
        except FileNotFoundError:
            pass
        except OSError as e:
            raise StoreUnavailable(f"deleting {name} failed: {e}") from e

    def create_exclusive(self, name: str, data: bytes) -> bool:
        path = self._path(name)
        with self._io(f"creating {name}"):
            path.parent.mkdir(parents=True, exist_ok=True)
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                return False
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            return True

    def describe(self) -> str:
        return f"folder {self.root}"


class S3Backend(Backend):
    """Objects in a bucket (created if missing); every call bounded by `timeout_s` (a hung endpoint is a failure)."""

    _MISSING = {"NoSuchKey", "NoSuchObject", "NotFound", "ResourceNotFound"}

    def __init__(self, endpoint: str, bucket: str, access_key: str | None, secret_key: str | None, *,
                 secure: bool = True, region: str | None = None, timeout_s: float = 30.0):
        import urllib3
        from minio import Minio

        http = urllib3.PoolManager(timeout=urllib3.Timeout(connect=timeout_s, read=timeout_s), maxsize=8,
                                   retries=urllib3.Retry(total=1, backoff_factor=0.2, status_forcelist=(500, 502,
                                                                                                        503, 504)))
        self.client = Minio(endpoint, access_key=access_key, secret_key=secret_key, secure=secure, region=region,
                            http_client=http)
        self.bucket, self.endpoint = bucket, endpoint
        self._bucket_ok = False

    @contextmanager
    def _s3(self, what: str):
        import urllib3
        from minio.error import MinioException, S3Error

        try:
            if not self._bucket_ok:
                if not self.client.bucket_exists(self.bucket):
                    try:
                        self.client.make_bucket(self.bucket)
                    except S3Error as e:
                        if e.code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                            raise
                self._bucket_ok = True
            yield
        except S3Error as e:
            if e.code in self._MISSING:
                raise NotFound(f"{what}: not found") from None
            raise StoreUnavailable(f"{what} failed: {e.code}: {e.message}") from e
        except (urllib3.exceptions.HTTPError, OSError, MinioException, ValueError) as e:
            raise StoreUnavailable(f"{what}: S3 endpoint {self.endpoint} unavailable: {e}") from e

    def put(self, name: str, data: bytes) -> None:
        with self._s3(f"writing {name}"):
            self.client.put_object(self.bucket, name, io.BytesIO(data), len(data),
                                   part_size=max(5 << 20, min(len(data), 64 << 20)) if len(data) > 64 << 20 else 0)

    def get(self, name: str, offset: int = 0, length: int | None = None) -> bytes:
        with self._s3(f"reading {name}"):
            resp = self.client.get_object(self.bucket, name, offset=offset, length=length or 0)
            try:
                return resp.read()
            finally:
                resp.close()
                resp.release_conn()

    def list(self, prefix: str) -> list[ObjectInfo]:
        with self._s3(f"listing {prefix}"):
            return [ObjectInfo(o.object_name, o.size or 0, o.last_modified.timestamp() if o.last_modified else 0.0)
                    for o in self.client.list_objects(self.bucket, prefix=prefix, recursive=True)]

    def delete(self, name: str) -> None:
        with self._s3(f"deleting {name}"):
            self.client.remove_object(self.bucket, name)

    def create_exclusive(self, name: str, data: bytes) -> bool:
        """S3 has no portable create-if-absent in this client: write, then read back; the last writer wins and
        every other caller sees someone else's token (docs/prefix-store.md#eviction)."""
        try:
            if self.get(name):
                return False
        except NotFound:
            pass
        self.put(name, data)
        time.sleep(0.2)
        try:
            return self.get(name) == data
        except NotFound:
            return False

    def describe(self) -> str:
        return f"s3://{self.bucket} at {self.endpoint}"


def backend_from_url(url: str, access_key: str | None = None, secret_key: str | None = None,
                     timeout_s: float = 30.0) -> Backend:
    """`file:///folder` or `s3://[key:secret@]bucket?endpoint=host:port&secure=0&region=…` (the syntax of
    WHOLEDOC_BLOB_URL); credentials in the URL win over `access_key` / `secret_key`."""
    u = urlparse(url)
    if u.scheme == "file":
        if not u.path:
            raise BadStoreUrl(f"prefix store URL {url!r} names no folder")
        return FolderBackend(unquote(u.path))
    if u.scheme == "s3":
        q = {k: v[-1] for k, v in parse_qs(u.query).items()}
        if not u.hostname or "endpoint" not in q:
            raise BadStoreUrl(f"prefix store URL {url!r} needs a bucket and ?endpoint=host:port")
        return S3Backend(q["endpoint"], u.hostname, unquote(u.username) if u.username else access_key,
                         unquote(u.password) if u.password else secret_key,
                         secure=q.get("secure", "1").lower() not in ("0", "false", "no"), region=q.get("region"),
                         timeout_s=timeout_s)
    raise BadStoreUrl(f"unsupported prefix store URL {url!r}: use file:///folder or s3://bucket?endpoint=host:port")
