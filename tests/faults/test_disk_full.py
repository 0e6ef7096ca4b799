"""The local blob folder full: uploads to a real uvicorn whose blob folder is a 2 MiB tmpfs (where this machine lets
root mount one), else a folder whose writes get an injected ENOSPC. A clear 507 `storage_full`, no document row, no
blob and no partial file left; once space is there again the same upload is stored. docs/reliability.md."""

import errno
import io
import os
import subprocess
import time

import pytest

from pipeline.errors import StorageFull
from pipeline.records.models import Document
from pipeline.storage.local import LocalBlobStore
from tests.api.helpers import make_pdf, upload
from tests.faults.helpers import stack_env, tenant_client
from tests.faults.report import Row
from tests.helpers.services import uvicorn_api

pytestmark = [pytest.mark.services, pytest.mark.slow]


@pytest.fixture
def small_disk(tmp_path):
    """A 2 MiB tmpfs at tmp_path/blobs, or None where mounting is not allowed."""
    folder = tmp_path / "blobs"
    folder.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(folder)],
                                           capture_output=True).returncode != 0:
        yield None
        return
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)


def _files(folder) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def test_blob_folder_full_is_a_clear_507_and_keeps_nothing(small_disk, module_db, private_redis, records, tmp_path,
                                                           fault_rows):
    if small_disk is None:
        pytest.skip("no tmpfs here: test_injected_enospc_keeps_no_partial_blob covers the store")
    env = stack_env(module_db, private_redis.url.rsplit("/", 1)[0] + "/6", f"file://{small_disk}",
                    "http://127.0.0.1:9/v1", tmp_path, WHOLEDOC_MAX_UPLOAD_BYTES=str(8 << 20))
    big = b"%PDF-1.7\n" + os.urandom(1_400_000)  # spooled (1.4 MB), then its copy does not fit in 2 MiB
    with uvicorn_api(env, tmp_path / "uvicorn.log") as url:
        client = tenant_client(records, url)
        before = _files(small_disk)
        t0 = time.monotonic()
        r = upload(client, big, "big.pdf")
        assert r.status_code == 507, r.text
        assert r.json()["error"] == "storage_full" and "full" in r.json()["detail"], r.json()
        assert _files(small_disk) == before  # no blob, no spool or .part file left behind
        with records() as s:
            assert s.query(Document).filter_by(tenant_id=client.tenant_id).count() == 0
        ok = upload(client, make_pdf("fits", pages=1), "small.pdf")  # the space was given back
        assert ok.status_code == 201, ok.text
        recovered = time.monotonic() - t0
    with records() as s:
        assert s.query(Document).filter_by(tenant_id=client.tenant_id).count() == 1
    # the refused upload failed clearly (507 storage_full); the next one was stored
    fault_rows.append(Row("local blob folder full (2 MiB tmpfs), an upload", 1, 0, 1, 0, 0, round(recovered, 1)))


def test_injected_enospc_keeps_no_partial_blob(tmp_path, monkeypatch):
    """Wherever tmpfs is not available too: the copy into the blob folder fails with ENOSPC half-way (injected at the
    store's one copy call; the disk itself is fine)."""
    import pipeline.storage.local as local

    store = LocalBlobStore(tmp_path / "blobs")
    real = local.copy_file

    def half_then_full(src, dst):
        dst.write(src.read(1000))
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(local, "copy_file", half_then_full)
    with pytest.raises(StorageFull, match="blob folder is full"):
        store.put_stream("acme", io.BytesIO(b"%PDF-1.7\n" + os.urandom(5000)))
    assert _files(tmp_path / "blobs") == []  # the half-written part file is gone
    monkeypatch.setattr(local, "copy_file", real)
    ref = store.put_stream("acme", io.BytesIO(b"fits"))
    assert store.get_bytes(ref.key) == b"fits"
