"""Prefix snapshots from the product's side (docs/prefix-store.md): `wholedoc ask FILE "Q"` twice in embedded mode
on the tiny checkpoint serves the second run's prompt from the snapshot the first run left under the blob folder's
prefixes/; two inference servers share one bucket on moto's S3 server (a prefix computed on one is restored on the
other, never for another salt), and deleting a document through the API deletes the snapshots tagged with it."""

import os
import re
import subprocess
import sys
import time

import httpx
import pymupdf
import pytest
from minio import Minio

from pipeline.client import ClientConfig, InferenceClient, document_prefix_tag
from pipeline.records.db import make_engine, session_factory, transaction
from pipeline.records.models import new_id
from pipeline.records.tenants import create_api_key, create_tenant
from tests.api.helpers import upload
from tests.helpers.services import uvicorn_api
from tests.helpers.wait import wait_until
from tests.inference.server.helpers import Server, document_question

pytestmark = [pytest.mark.services, pytest.mark.slow]


def long_pdf(pages: int = 5) -> bytes:
    doc = pymupdf.open()
    for p in range(pages):
        lines = "\n".join(f"Line {p}.{i}: the quarterly figures for unit {p * 40 + i} rose by {i} percent."
                          for i in range(40))
        doc.new_page().insert_text((36, 36), lines, fontsize=7)
    return doc.tobytes()


def snapshots(folder) -> list:
    return sorted(p for p in folder.rglob("*.safetensors") if "tags" not in p.parts)


def test_wholedoc_ask_twice_embedded_restores_the_document_prefix(tiny_checkpoint, tmp_path):
    pdf = tmp_path / "report.pdf"
    pdf.write_bytes(long_pdf())
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("WHOLEDOC_")}
    env |= {"WHOLEDOC_HOME": str(home), "WHOLEDOC_CHECKPOINT": str(tiny_checkpoint),
            "WHOLEDOC_PREFIX_STORE_MIN_TOKENS": "256"}
    cached = []
    for _ in range(2):  # each run starts (and stops) its own inference server
        r = subprocess.run([sys.executable, "-m", "api.cli", "ask", str(pdf), "Which unit rose most?",
                            "--max-tokens", "4"], env=env, capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr + "\n".join(p.read_text()[-2000:] for p in (home / "logs").glob("*.log"))
        m = re.search(r"(\d+) prompt tokens \((\d+) cached\)", r.stderr)
        assert m, r.stderr
        cached.append((int(m.group(1)), int(m.group(2))))
        assert snapshots(home / "blobs" / "prefixes"), "the first run left no snapshot"
    (prompt, first), (_, second) = cached
    assert first == 0
    assert second >= 0.9 * prompt, cached  # a new server process: these came from the snapshot, not memory


def test_two_servers_share_a_bucket_and_deleting_a_document_deletes_its_snapshots(
        pg_url, tiny_checkpoint, moto_endpoint, tmp_path, monkeypatch):
    monkeypatch.setenv("WHOLEDOC_S3_ACCESS_KEY", "testing")  # the servers' credentials, as compose passes them
    monkeypatch.setenv("WHOLEDOC_S3_SECRET_KEY", "testing")
    bucket = f"prefix-{new_id().lower()}"
    args = ["--prefix-store", f"s3://{bucket}?endpoint={moto_endpoint}&secure=0", "--prefix-store-min-tokens", "256"]
    a = Server(tiny_checkpoint, *args, log=tmp_path / "a.log")
    b = Server(tiny_checkpoint, *args, log=tmp_path / "b.log")
    s3 = Minio(moto_endpoint, access_key="testing", secret_key="testing", secure=False)

    def stored() -> list[str]:
        return sorted(o.object_name for o in s3.list_objects(bucket, "prefixes/v", recursive=True)
                      if o.object_name.endswith(".safetensors"))

    engine = make_engine(pg_url)
    try:
        env = {"WHOLEDOC_DATABASE_URL": pg_url, "WHOLEDOC_BLOB_URL": f"file://{tmp_path / 'blobs'}",
               "WHOLEDOC_INFERENCE_URL": b.url, "WHOLEDOC_HOME": str(tmp_path)}
        with uvicorn_api(env, tmp_path / "uvicorn.log") as url:
            with transaction(session_factory(engine)) as s:
                tenant = create_tenant(s, f"prefix-{new_id()}")
                _, key = create_api_key(s, tenant.id)
            api = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=60)
            keep, gone = (upload(api, long_pdf(p), f"d{p}.pdf").json()["id"] for p in (2, 3))
            texts = {d: "\n".join(f"{d}: line {i} of the filing, item {i * 7 % 13}." for i in range(120))
                     for d in (keep, gone)}
            on_a, on_b = (InferenceClient(ClientConfig(base_url=s.url, model="wholedoc", max_retries=0))
                          for s in (a, b))
            greedy = dict(max_tokens=6, temperature=0, stream=False, extra_body={"ignore_eos": True})
            # the worker's request shape: the tenant's salt and the document's tag (workers/tasks/llm.py)
            for d in (keep, gone):
                on_a.chat(document_question(texts[d], "What is item 3?"), cache_salt=tenant.id,
                          prefix_tag=document_prefix_tag(tenant.id, d), **greedy)
            cold = on_a.chat(document_question(texts[gone], "Which line is last?"), cache_salt="cold", **greedy)
            a.wait_metrics(lambda m: m.get("prefix_store_writes_total", 0) >= 3, "three snapshots written", 60)
            # replica b restores what a computed
            got = on_b.chat(document_question(texts[gone], "Which line is last?"), cache_salt=tenant.id, **greedy)
            assert got.usage.cached_tokens >= 1024 and got.content == cold.content, (got.usage, cold.usage)
            b.wait_metrics(lambda m: m.get("prefix_restored_tokens_total") == got.usage.cached_tokens,
                           "restored tokens counted")
            other = on_b.chat(document_question(texts[gone], "Which line is last?"), cache_salt="another-tenant",
                              **greedy)
            assert other.usage.cached_tokens == 0  # another salt restores nothing
            b.wait_metrics(lambda m: m.get("prefix_store_writes_total", 0) >= 1, "b's own snapshot written", 60)
            # b may also have written where `got` left a's snapshot (an untagged one: when the restore did not end
            # on a block whose window state the snapshot holds, the engine snapshots the state where the request
            # leaves the stored prefix; which of the two happens depends on timing). Writes are asynchronous: wait
            # until every write b counted is in the bucket and the listing holds still.
            settled: dict[str, list[str]] = {}

            def writes_settled() -> bool:
                first = stored()
                time.sleep(1.0)
                settled["names"] = stored()
                b_writes = int(b.metrics().get("prefix_store_writes_total", 0))
                return first == settled["names"] and len(first) == 3 + b_writes
            wait_until(writes_settled, 60, "b's snapshot writes in the bucket")
            before = settled["names"]
            assert len(before) in (4, 5), before  # a's 3, another tenant's, and perhaps b's for `got`
            # deleting a document through the API deletes the snapshots its requests left, nothing else
            assert api.delete(f"/v1/documents/{gone}").status_code == 204
            wait_until(lambda: len(stored()) == len(before) - 1, 30, "the deleted document's snapshot removed")
            assert api.get(f"/v1/documents/{keep}").status_code == 200
            assert on_b.delete_prefixes(document_prefix_tag(tenant.id, keep)) == 1
            # the cold reference's and another tenant's (and b's for `got`): untagged, left to age out
            assert len(stored()) == len(before) - 2
            assert httpx.delete(f"{b.root}/v1/prefixes", timeout=30).status_code == 400  # no tag: say so
            api.close()
    finally:
        a.close()
        b.close()
        engine.dispose()
