"""Prefix snapshots from the product's side (docs/prefix-store.md): `wholedoc ask FILE "Q"` twice in embedded mode
on the tiny checkpoint serves the second run's prompt from the snapshot the first run left under the blob folder's
prefixes/; deleting a document through the API deletes the snapshots tagged with it on the inference server; the
client sends the tag."""

import os
import re
import subprocess
import sys

import httpx
import pymupdf
import pytest

from pipeline.client import ClientConfig, InferenceClient, document_prefix_tag
from pipeline.records.db import make_engine, session_factory, transaction
from pipeline.records.models import new_id
from pipeline.records.tenants import create_api_key, create_tenant
from tests.api.helpers import upload
from tests.helpers.services import free_port, stop, uvicorn_api, wait_healthy
from tests.helpers.wait import wait_until

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


def test_deleting_a_document_deletes_its_prefix_snapshots(pg_url, tiny_checkpoint, tmp_path):
    store = tmp_path / "store"
    port = free_port()
    inference = subprocess.Popen([sys.executable, "-m", "inference.serve", "--checkpoint", str(tiny_checkpoint),
                                  "--port", str(port), "--prefix-store", f"file://{store}",
                                  "--prefix-store-min-tokens", "256", "--log-level", "warning"],
                                 stdout=(tmp_path / "inference.log").open("wb"), stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    engine = make_engine(pg_url)
    try:
        wait_healthy(base, inference, "inference server", 180)
        env = {"WHOLEDOC_DATABASE_URL": pg_url, "WHOLEDOC_BLOB_URL": f"file://{tmp_path / 'blobs'}",
               "WHOLEDOC_INFERENCE_URL": f"{base}/v1", "WHOLEDOC_HOME": str(tmp_path)}
        with uvicorn_api(env, tmp_path / "uvicorn.log") as url:
            with transaction(session_factory(engine)) as s:
                tenant = create_tenant(s, f"prefix-{new_id()}")
                _, key = create_api_key(s, tenant.id)
            api = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=60)
            keep, gone = (upload(api, long_pdf(p), f"d{p}.pdf").json()["id"] for p in (2, 3))
            # what the worker sends for each document's questions (the client, as workers/tasks/llm.py calls it)
            client = InferenceClient(ClientConfig(base_url=f"{base}/v1", model="wholedoc", max_retries=0))
            for doc_id in (keep, gone):
                text = " ".join(f"{doc_id} word{i}" for i in range(600))
                client.chat([{"role": "user", "content": text}], max_tokens=2, cache_salt=tenant.id,
                            prefix_tag=document_prefix_tag(tenant.id, doc_id))
            wait_until(lambda: len(snapshots(store)) == 2, 60, "two snapshots written")
            before = snapshots(store)
            assert api.delete(f"/v1/documents/{gone}").status_code == 204
            wait_until(lambda: len(snapshots(store)) == 1, 30, "the deleted document's snapshot removed")
            assert snapshots(store)[0] in before
            assert api.get(f"/v1/documents/{keep}").status_code == 200
            assert client.delete_prefixes(document_prefix_tag(tenant.id, keep)) == 1
            assert snapshots(store) == []
            api.close()
    finally:
        stop(inference)
        engine.dispose()
