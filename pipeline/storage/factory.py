"""Build a blob store from a URL: `file:///path` or `s3://[key:secret@]bucket?endpoint=host:port&secure=0`.

The default URL (a folder in the embedded data folder) is derived by `pipeline.settings.DataSettings`.
"""

from dataclasses import dataclass
from urllib.parse import parse_qs, unquote, urlparse

from pipeline.errors import StorageError
from pipeline.storage.base import BlobStore


@dataclass(frozen=True)
class BlobUrl:
    """A parsed blob store URL: `folder` for file://, else the S3 bucket, endpoint and options."""

    scheme: str
    folder: str | None = None
    bucket: str | None = None
    endpoint: str | None = None
    access_key: str | None = None
    secret_key: str | None = None
    secure: bool = True
    region: str | None = None
    part_size: int | None = None


def parse_blob_url(url: str) -> BlobUrl:
    """`file:///var/lib/wholedoc/blobs`, or `s3://bucket?endpoint=minio:9000&secure=0&region=us-east-1&part_size=…`;
    StorageError naming what is missing or wrong."""
    u = urlparse(url)
    if u.scheme == "file":
        if not u.path:
            raise StorageError(f"blob store URL {url!r} names no folder")
        return BlobUrl("file", folder=unquote(u.path))
    if u.scheme == "s3":
        q = {k: v[-1] for k, v in parse_qs(u.query).items()}
        if not u.hostname or "endpoint" not in q:
            raise StorageError(f"blob store URL {url!r} needs a bucket and ?endpoint=host:port")
        part_size = q.get("part_size")
        if part_size is not None and not part_size.isdigit():
            raise StorageError(f"blob store URL {url!r}: part_size must be a whole number of bytes")
        return BlobUrl("s3", bucket=u.hostname, endpoint=q["endpoint"],
                       access_key=unquote(u.username) if u.username else None,
                       secret_key=unquote(u.password) if u.password else None,
                       secure=q.get("secure", "1").lower() not in ("0", "false", "no"), region=q.get("region"),
                       part_size=int(part_size) if part_size else None)
    raise StorageError(f"unsupported blob store URL {url!r}: use file:///path or s3://bucket?endpoint=host:port")


def blob_store_from_url(url: str, *, access_key: str | None = None, secret_key: str | None = None) -> BlobStore:
    """The store a blob URL names; S3 credentials from the URL's user:password, else `access_key` / `secret_key`
    (the settings' WHOLEDOC_S3_ACCESS_KEY / WHOLEDOC_S3_SECRET_KEY)."""
    b = parse_blob_url(url)
    if b.scheme == "file":
        from pipeline.storage.local import LocalBlobStore

        return LocalBlobStore(b.folder)
    from minio import Minio

    from pipeline.storage.s3 import S3BlobStore

    client = Minio(b.endpoint, access_key=b.access_key or access_key, secret_key=b.secret_key or secret_key,
                   secure=b.secure, region=b.region)
    return S3BlobStore(client, b.bucket, **({"part_size": b.part_size} if b.part_size else {}))
