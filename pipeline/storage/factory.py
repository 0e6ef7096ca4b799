"""Build a blob store from a URL: `file:///path` or `s3://[key:secret@]bucket?endpoint=host:port&secure=0`; and
the URL every process uses when none is configured (`blob_url`)."""

import os
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse

from pipeline.errors import StorageError
from pipeline.storage.base import BlobStore


def blob_url(home: Path | None = None) -> str:
    """`WHOLEDOC_BLOB_URL`, else the `blobs` folder of the embedded data folder (`home`, default WHOLEDOC_HOME)."""
    url = os.environ.get("WHOLEDOC_BLOB_URL")
    if url:
        return url
    if home is None:
        from pipeline.records.db import wholedoc_home

        home = wholedoc_home()
    return f"file://{home / 'blobs'}"


def blob_store_from_url(url: str) -> BlobStore:
    """`file:///var/lib/wholedoc/blobs`, or `s3://bucket?endpoint=minio:9000&secure=0&region=us-east-1&part_size=…`.

    S3 credentials come from the URL's user:password or WHOLEDOC_S3_ACCESS_KEY / WHOLEDOC_S3_SECRET_KEY.
    """
    u = urlparse(url)
    if u.scheme == "file":
        from pipeline.storage.local import LocalBlobStore

        if not u.path:
            raise StorageError(f"blob store URL {url!r} names no folder")
        return LocalBlobStore(unquote(u.path))
    if u.scheme == "s3":
        from minio import Minio

        from pipeline.storage.s3 import S3BlobStore

        q = {k: v[-1] for k, v in parse_qs(u.query).items()}
        bucket = u.hostname
        if not bucket or "endpoint" not in q:
            raise StorageError(f"blob store URL {url!r} needs a bucket and ?endpoint=host:port")
        access = unquote(u.username) if u.username else os.environ.get("WHOLEDOC_S3_ACCESS_KEY")
        secret = unquote(u.password) if u.password else os.environ.get("WHOLEDOC_S3_SECRET_KEY")
        secure = q.get("secure", "1").lower() not in ("0", "false", "no")
        client = Minio(q["endpoint"], access_key=access, secret_key=secret, secure=secure, region=q.get("region"))
        kw = {"part_size": int(q["part_size"])} if "part_size" in q else {}
        return S3BlobStore(client, bucket, **kw)
    raise StorageError(f"unsupported blob store URL {url!r}: use file:///path or s3://bucket?endpoint=host:port")
