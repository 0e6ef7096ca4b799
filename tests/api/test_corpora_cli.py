"""`wholedoc corpus add` and `corpus ls` against a real API (WHOLEDOC_API_URL + WHOLEDOC_API_KEY): the count it reports
is the API's (documents that were not in the corpus yet), not the number of files given. No worker runs here: the
files' documents are uploaded and made ready first, so the command's uploads find them (same bytes, same document)."""

import os
import subprocess
import sys

import pytest

from pipeline.records.models import new_id
from tests.api.helpers import finish, make_pdf, make_ready, upload

pytestmark = pytest.mark.services


def _cli(env, *args):
    return subprocess.run([sys.executable, "-m", "api.cli", "corpus", *args], env=env, capture_output=True, text=True,
                          timeout=120)


def test_add_reports_the_documents_new_to_the_corpus_and_ls_counts_them(make_client, records, tmp_path):
    client = make_client()
    env = {**os.environ, "WHOLEDOC_API_URL": str(client.base_url).rstrip("/"),
           "WHOLEDOC_API_KEY": client.headers["Authorization"].removeprefix("Bearer ")}
    ids = {}
    for name in ("alpha", "beta"):
        data = make_pdf(f"{name} {new_id()}")
        (tmp_path / f"{name}.pdf").write_bytes(data)
        doc = upload(client, data, name=f"{name}.pdf").json()
        finish(records, doc["ingest_job_id"])
        make_ready(records, doc["id"])
        ids[name] = doc["id"]
    both, one = f"both-{new_id()}", f"one-{new_id()}"
    corpus = client.post("/v1/corpora", json={"name": both}).json()
    assert client.post(f"/v1/corpora/{corpus['id']}/documents",
                       json={"document_ids": [ids["alpha"]]}).json()["added"] == 1
    assert _cli(env, "create", one).returncode == 0

    added = _cli(env, "add", both, str(tmp_path / "alpha.pdf"), str(tmp_path / "beta.pdf"))
    assert added.returncode == 0, added.stderr
    assert f"corpus {both}: 1 document added, 1 document in it already" in added.stderr, added.stderr
    assert added.stdout.split() == [ids["alpha"], "alpha.pdf", ids["beta"], "beta.pdf"]
    again = _cli(env, "add", both, str(tmp_path / "beta.pdf"))
    assert f"corpus {both}: 0 documents added, 1 document in it already" in again.stderr, again.stderr
    first = _cli(env, "add", one, str(tmp_path / "beta.pdf"))
    assert first.stderr.rstrip().endswith(f"corpus {one}: 1 document added"), first.stderr

    listed = _cli(env, "ls")
    assert listed.returncode == 0, listed.stderr
    assert f"    2 documents  {both}" in listed.stdout and f"    1 document  {one}" in listed.stdout, listed.stdout
