"""One blob-store suite, run against a real S3 HTTP server (moto) and a local folder."""

import hashlib
import io
import os
import urllib.request
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from minio import Minio

from pipeline.errors import BlobNotFound, BlobTooLarge, IntegrityError, InvalidBlobKey, StorageError
from pipeline.storage import BlobRef, LocalBlobStore, blob_store_from_url
from pipeline.storage.s3 import S3BlobStore

MB = 1024 * 1024


class Backend:
    """A store plus a way to overwrite a stored blob's bytes behind its back (to test integrity checks)."""

    def __init__(self, name, store, tamper, count_objects):
        self.name, self.store, self.tamper, self.count_objects = name, store, tamper, count_objects


@pytest.fixture(params=[pytest.param("s3", marks=pytest.mark.services), "local"])  # s3: moto's server
def backend(request, tmp_path):
    if request.param == "local":
        store = LocalBlobStore(tmp_path / "blobs")

        def tamper(key, data):
            (store.root / key).write_bytes(data)

        def count(prefix):
            base = store.root / prefix
            return sum(1 for p in base.rglob("*") if p.is_file()) if base.exists() else 0

        yield Backend("local", store, tamper, count)
        return
    endpoint = request.getfixturevalue("moto_endpoint")
    client = Minio(endpoint, access_key="testing", secret_key="testing", secure=False, region="us-east-1")
    bucket = f"wd-{request.node.name.split('[')[0].replace('_', '-')[:40]}".lower()
    store = S3BlobStore(client, bucket, part_size=5 * MB)

    def tamper(key, data):
        client.put_object(bucket, key, io.BytesIO(data), len(data))

    def count(prefix):
        return sum(1 for _ in client.list_objects(bucket, prefix=prefix, recursive=True))

    yield Backend("s3", store, tamper, count)
    for o in client.list_objects(bucket, recursive=True):
        client.remove_object(bucket, o.object_name)


def test_put_get_round_trip_is_content_addressed(backend):
    data = b"hello whole documents\n" * 100
    ref = backend.store.put_bytes("acme", data)
    sha = hashlib.sha256(data).hexdigest()
    assert ref == BlobRef(f"tenants/acme/blobs/sha256/{sha}", sha, len(data))
    assert backend.store.exists(ref.key)
    assert backend.store.get_bytes(ref.key) == data


def test_large_object_goes_multipart_and_round_trips(backend):
    data = os.urandom(12 * MB + 123)  # > 2 parts of 5 MB
    ref = backend.store.put_stream("acme", io.BytesIO(data))
    assert ref.size == len(data)
    out = io.BytesIO()
    assert backend.store.copy_to(ref.key, out) == len(data)
    assert hashlib.sha256(out.getvalue()).hexdigest() == ref.sha256
    if backend.name == "s3":
        etag = backend.store.client.stat_object(backend.store.bucket, ref.key).etag
        assert etag.endswith("-3"), f"expected a 3-part multipart ETag, got {etag}"


def test_over_max_bytes_is_refused_and_nothing_kept(backend):
    with pytest.raises(BlobTooLarge, match="1000 bytes"):
        backend.store.put_bytes("acme", b"x" * 1001, max_bytes=1000)
    assert backend.count_objects("tenants/acme/") == 0
    assert backend.store.put_bytes("acme", b"x" * 1000, max_bytes=1000).size == 1000


def test_tampered_blob_raises_integrity_error(backend):
    ref = backend.store.put_bytes("acme", b"the original bytes")
    backend.tamper(ref.key, b"the tampered bytes")
    with pytest.raises(IntegrityError, match=ref.sha256):
        backend.store.get_bytes(ref.key)
    with pytest.raises(IntegrityError):
        with backend.store.open(ref.key) as r:
            while r.read(4):
                pass


def test_truncated_blob_raises_integrity_error(backend):
    ref = backend.store.put_bytes("acme", b"0123456789" * 1000)
    backend.tamper(ref.key, b"0123456789" * 999)
    with pytest.raises(IntegrityError):
        backend.store.get_bytes(ref.key)


def test_missing_blob_is_blob_not_found(backend):
    key = "tenants/acme/blobs/sha256/" + "0" * 64
    assert not backend.store.exists(key)
    with pytest.raises(BlobNotFound):
        backend.store.get_bytes(key)
    with pytest.raises(BlobNotFound):
        backend.store.presigned_get(key)


def test_presigned_get_serves_the_bytes(backend):
    data = b"fetch me by URL"
    ref = backend.store.put_bytes("acme", data)
    url = backend.store.presigned_get(ref.key, timedelta(minutes=5))
    if url.startswith("http"):
        r = httpx.get(url)
        assert r.status_code == 200
        body = r.content
    else:
        assert url.startswith("file://")
        with urllib.request.urlopen(url) as r:
            body = r.read()
    assert body == data
    with pytest.raises(InvalidBlobKey, match="7 days"):
        backend.store.presigned_get(ref.key, timedelta(days=8))


def test_identical_uploads_share_a_blob_that_survives_the_first_release(backend):
    data = b"same upload twice"
    a = backend.store.put_bytes("acme", data)
    backend.store.add_ref(a.key, "doc-1")
    b = backend.store.put_bytes("acme", data)
    backend.store.add_ref(b.key, "doc-2")
    assert a == b
    assert backend.count_objects("tenants/acme/blobs/") == 1
    assert backend.store.owners(a.key) == ["doc-1", "doc-2"]

    assert backend.store.release(a.key, "doc-1") is False
    assert backend.store.get_bytes(b.key) == data
    assert backend.store.release(b.key, "doc-2") is True
    assert not backend.store.exists(a.key)
    assert backend.count_objects("tenants/acme/") == 0


def test_sweep_deletes_only_unreferenced_old_blobs(backend):
    keep = backend.store.put_bytes("acme", b"kept").key
    drop = backend.store.put_bytes("acme", b"dropped").key
    other = backend.store.put_bytes("other", b"other tenant").key
    assert backend.store.sweep("acme", {keep}) == []  # both too young
    assert backend.store.sweep("acme", {keep}, min_age=timedelta(0)) == [drop]
    assert backend.store.exists(keep) and not backend.store.exists(drop) and backend.store.exists(other)


def test_tenants_are_isolated_and_validated(backend):
    a = backend.store.put_bytes("t1", b"same")
    b = backend.store.put_bytes("t2", b"same")
    assert a.key != b.key and a.sha256 == b.sha256
    for bad in ["../etc", "a/b", "", ".hidden", "x" * 129, "t1/../../t2"]:
        with pytest.raises(InvalidBlobKey):
            backend.store.put_bytes(bad, b"data")
    for key in ["tenants/../blobs/sha256/" + "0" * 64, "/etc/passwd", "tenants/t1/blobs/sha256/ZZ",
                "tenants/t1/blobs/sha256/" + "0" * 64 + "/../x"]:
        with pytest.raises(InvalidBlobKey):
            backend.store.get_bytes(key)
    with pytest.raises(InvalidBlobKey):
        backend.store.add_ref(a.key, "../owner")


def test_delete_is_idempotent(backend):
    ref = backend.store.put_bytes("acme", b"short-lived")
    backend.store.delete(ref.key)
    backend.store.delete(ref.key)
    assert not backend.store.exists(ref.key)
    with pytest.raises(BlobNotFound):
        backend.store.add_ref(ref.key, "doc-1")


@pytest.mark.services
def test_factory_builds_both_backends(tmp_path, moto_endpoint):
    local = blob_store_from_url(f"file://{tmp_path}/f")
    assert isinstance(local, LocalBlobStore) and Path(local.root) == (tmp_path / "f").resolve()
    s3 = blob_store_from_url(f"s3://testing:testing@wd-factory?endpoint={moto_endpoint}&secure=0&region=us-east-1")
    assert isinstance(s3, S3BlobStore)
    ref = s3.put_bytes("acme", b"via factory")
    assert local.put_bytes("acme", b"via factory").key == ref.key
    assert s3.get_bytes(ref.key) == b"via factory"
    with pytest.raises(StorageError, match="unsupported"):
        blob_store_from_url("ftp://x")
    with pytest.raises(StorageError, match="endpoint"):
        blob_store_from_url("s3://bucket")


class FaultProxy:
    """A loopback HTTP proxy in front of moto that answers 403 to the second multipart part, and logs requests."""

    def __init__(self, upstream: str):
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
        from urllib.parse import parse_qs, urlsplit

        self.log: list[tuple[str, str]] = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def _any(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                q = parse_qs(urlsplit(self.path).query, keep_blank_values=True)
                proxy.log.append((self.command, self.path))
                if self.command == "PUT" and q.get("partNumber") == ["2"]:
                    err = b"<Error><Code>AccessDenied</Code><Message>injected fault</Message></Error>"
                    self.send_response(403)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(err)))
                    self.end_headers()
                    self.wfile.write(err)
                    return
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
                r = httpx.request(self.command, f"http://{upstream}{self.path}", headers=headers, content=body)
                self.send_response(r.status_code)
                for k, v in r.headers.items():
                    if k.lower() not in ("content-length", "transfer-encoding", "connection", "content-encoding"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(r.content)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(r.content)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _any

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.services
def test_failed_multipart_upload_is_aborted_and_nothing_kept(moto_endpoint):
    proxy = FaultProxy(moto_endpoint)
    try:
        client = Minio(proxy.endpoint, access_key="testing", secret_key="testing", secure=False, region="us-east-1")
        store = S3BlobStore(client, "wd-abort", part_size=5 * MB)
        data = os.urandom(11 * MB)
        with pytest.raises(StorageError, match="AccessDenied"):
            store.put_bytes("acme", data)
        assert any(m == "DELETE" and "uploadId=" in p for m, p in proxy.log), "no AbortMultipartUpload was sent"
        assert not store.exists(f"tenants/acme/blobs/sha256/{hashlib.sha256(data).hexdigest()}")
        listing = httpx.get(f"http://{moto_endpoint}/wd-abort?uploads").text  # straight to moto
        assert "<Upload>" not in listing and "ListMultipartUploadsResult" in listing
        assert store.put_bytes("acme", b"small objects still work").size == 24
    finally:
        proxy.close()


def test_failing_source_stream_keeps_nothing(backend):
    class Broken(io.RawIOBase):
        def __init__(self):
            self.n = 0

        def readable(self):
            return True

        def readinto(self, b):
            self.n += 1
            if self.n > 3:
                raise OSError("client went away")
            b[:1024] = b"x" * 1024
            return 1024

    with pytest.raises(OSError, match="client went away"):
        backend.store.put_stream("acme", io.BufferedReader(Broken()))
    assert backend.count_objects("tenants/acme/") == 0


def test_unreachable_s3_is_storage_unavailable():
    import urllib3

    from pipeline.errors import StorageUnavailable
    from tests.helpers.services import free_port

    http = urllib3.PoolManager(retries=urllib3.Retry(total=1, backoff_factor=0), timeout=2)
    client = Minio(f"127.0.0.1:{free_port()}", access_key="k", secret_key="s", secure=False, region="us-east-1",
                   http_client=http)
    with pytest.raises(StorageUnavailable, match="unavailable"):
        S3BlobStore(client, "wd-down")


def test_local_sweep_drops_stale_partial_writes(tmp_path):
    store = LocalBlobStore(tmp_path / "b")
    stale, fresh = store.root / "tmp" / "a.1.2.part", store.root / "tmp" / "b.1.2.part"
    stale.write_bytes(b"half")
    fresh.write_bytes(b"half")
    os.utime(stale, (1, 1))
    store.sweep("acme", set())
    assert not stale.exists() and fresh.exists()
