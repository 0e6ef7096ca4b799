"""A blob store in an S3 bucket through the `minio` client (MinIO in production, moto's server in tests)."""

import io
from collections.abc import Iterable
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import BinaryIO

import urllib3
from minio import Minio
from minio.error import MinioException, S3Error

from pipeline.errors import BlobNotFound, StorageError, StorageUnavailable
from pipeline.storage.base import (
    BlobRef,
    BlobStore,
    VerifyingReader,
    blob_key,
    check_expiry,
    check_id,
    parse_key,
    spool,
)

MIN_PART = 5 * 1024 * 1024  # S3's smallest multipart part
_MISSING = {"NoSuchKey", "NoSuchObject", "NotFound", "ResourceNotFound"}


@contextmanager
def _s3(what: str):
    """Turn client and connection failures into typed storage errors that name the operation."""
    try:
        yield
    except S3Error as e:
        if e.code in _MISSING:
            raise BlobNotFound(f"{what}: not found") from None
        raise StorageError(f"{what} failed: {e.code}: {e.message}") from e
    except (urllib3.exceptions.HTTPError, OSError) as e:
        raise StorageUnavailable(f"{what}: S3 endpoint unavailable: {e}") from e
    except MinioException as e:
        raise StorageError(f"{what} failed: {e}") from e


class S3BlobStore(BlobStore):
    """Blobs in `bucket` (created if missing). Uploads over `part_size` go multipart; minio aborts it on failure."""

    def __init__(self, client: Minio, bucket: str, *, part_size: int = 16 * 1024 * 1024, spool_dir: str | None = None):
        if part_size < MIN_PART:
            raise ValueError(f"part_size must be at least {MIN_PART} bytes (S3's minimum)")
        self.client, self.bucket, self.part_size, self.spool_dir = client, bucket, part_size, spool_dir
        try:
            with _s3(f"using bucket {bucket!r}"):
                if not client.bucket_exists(bucket):
                    client.make_bucket(bucket)
        except StorageError as e:
            cause = e.__cause__
            if not (isinstance(cause, S3Error) and cause.code in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists")):
                raise

    def _refs(self, key: str) -> str:
        tenant, sha = parse_key(key)
        return f"tenants/{tenant}/refs/sha256/{sha}/"

    def put_stream(self, tenant: str, stream: BinaryIO, *, max_bytes: int | None = None) -> BlobRef:
        check_id(tenant)
        tmp, sha, size = spool(stream, max_bytes, self.spool_dir)
        with tmp:
            ref = BlobRef(blob_key(tenant, sha), sha, size)
            if self._size(ref.key) == size:
                return ref
            with _s3(f"upload of {ref.key}"):
                self.client.put_object(self.bucket, ref.key, tmp, size, part_size=self.part_size,
                                       metadata={"x-amz-meta-sha256": sha})
        return ref

    def _size(self, key: str) -> int | None:
        try:
            with _s3(f"stat {key}"):
                return self.client.stat_object(self.bucket, key).size
        except BlobNotFound:
            return None

    def open(self, key: str) -> VerifyingReader:
        _, sha = parse_key(key)
        with _s3(f"get {key}"):
            resp = self.client.get_object(self.bucket, key)
        return VerifyingReader(resp, key, sha, on_close=resp.release_conn,
                               transport_errors=(urllib3.exceptions.HTTPError, OSError))

    def exists(self, key: str) -> bool:
        parse_key(key)
        return self._size(key) is not None

    def presigned_get(self, key: str, expires: timedelta = timedelta(minutes=15)) -> str:
        check_expiry(expires)
        if not self.exists(key):
            raise BlobNotFound(f"no blob {key}")
        with _s3(f"presign {key}"):
            return self.client.presigned_get_object(self.bucket, key, expires=expires)

    def delete(self, key: str) -> None:
        parse_key(key)
        with _s3(f"delete {key}"):
            for name in self._ref_names(key):
                self.client.remove_object(self.bucket, name)
            self.client.remove_object(self.bucket, key)

    def _ref_names(self, key: str) -> list[str]:
        with _s3(f"list owners of {key}"):
            return [o.object_name for o in self.client.list_objects(self.bucket, prefix=self._refs(key),
                                                                     recursive=True)]

    def add_ref(self, key: str, owner: str) -> None:
        check_id(owner, "owner id")
        if not self.exists(key):
            raise BlobNotFound(f"no blob {key} to reference")
        with _s3(f"add owner {owner} to {key}"):
            self.client.put_object(self.bucket, self._refs(key) + owner, io.BytesIO(b""), 0)

    def owners(self, key: str) -> list[str]:
        return sorted(name.rsplit("/", 1)[1] for name in self._ref_names(key))

    def _drop_ref(self, key: str, owner: str) -> None:
        with _s3(f"drop owner {owner} of {key}"):
            self.client.remove_object(self.bucket, self._refs(key) + owner)

    def list_blobs(self, tenant: str) -> Iterable[tuple[str, float]]:
        prefix = f"tenants/{check_id(tenant)}/blobs/sha256/"
        now = datetime.now(UTC)
        out = []
        with _s3(f"list blobs of {tenant}"):
            for o in self.client.list_objects(self.bucket, prefix=prefix, recursive=True):
                age = (now - o.last_modified).total_seconds() if o.last_modified else float("inf")
                out.append((o.object_name, age))
        return sorted(out)
