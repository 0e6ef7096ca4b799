"""Questions over a corpus, end to end on real processes: uvicorn + a Celery worker (ingest indexes, the corpus
question runs) + PostgreSQL + Redis + a local blob folder, and the loopback fault server as the model, scripted to
write citations (random weights write none). The window is small (WHOLEDOC_MAX_MODEL_LEN=4096; the fault server
reports none), so the corpus does not fit and documents are selected."""

import io
import zipfile
from contextlib import contextmanager

import httpx
import pymupdf
import pytest

from pipeline.records.db import make_engine, session_factory
from tests.api.helpers import job_finished, wait_job_http
from tests.helpers.services import redis_db, start_worker, stop, uvicorn_api
from tests.helpers.tenants import tenant_client
from tests.pipeline.faultserver import FaultServer, Reply

pytestmark = [pytest.mark.services, pytest.mark.slow]
WINDOW = 4096
QUESTION = "How many widgets did the Zanzibar plant make?"


def pdf_bytes(*pages: str) -> bytes:
    doc = pymupdf.open()
    for text in pages:
        page = doc.new_page()
        page.insert_textbox(pymupdf.Rect(50, 50, 560, 800), text, fontsize=9)
    return doc.tobytes()


def zip_bytes(files: dict[str, str]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for path, body in files.items():
            z.writestr(path, body)
    return buf.getvalue()


def words(topic: str, n: int) -> str:
    """n sentences about a topic, ordinary words (the extractor's quality checks pass)."""
    return " ".join(f"Note {i}: the {topic} team reviewed the {topic} schedule and the budget." for i in range(n))


@contextmanager
def corpus_stack(pg_url: str, broker: str, logs, window: int, name: str, worker_args: tuple = (), **env: str):
    """(api URL, fault server, records): a fault server with no window and no probe (the configured `window` and the
    assumed cache apply), a worker (`worker_args` added to its command) and uvicorn; `env` adds to theirs."""
    llm = FaultServer(wholedoc=False)
    env = {"WHOLEDOC_DATABASE_URL": pg_url, "WHOLEDOC_BROKER_URL": broker,
           "WHOLEDOC_BLOB_URL": f"file://{logs / 'blobs'}", "WHOLEDOC_INFERENCE_URL": llm.base_url,
           "WHOLEDOC_MODEL": llm.model, "WHOLEDOC_MAX_MODEL_LEN": str(window), "WHOLEDOC_LEASE_SECONDS": "5",
           "WHOLEDOC_HOME": str(logs)} | env
    worker = start_worker(env, logs / "worker.log", name=name, extra=worker_args)
    engine = make_engine(pg_url)
    try:
        with uvicorn_api(env, logs / "uvicorn.log") as url:
            yield url, llm, session_factory(engine)
    finally:
        stop(worker)
        llm.close()
        engine.dispose()


@pytest.fixture(scope="module")
def stack(pg_url, redis_url, tmp_path_factory):
    logs = tmp_path_factory.mktemp("corpus-questions")
    with corpus_stack(pg_url, redis_db(redis_url, 11), logs, WINDOW, "corpus") as stack:  # own queues
        yield stack


def client_of(stack) -> httpx.Client:
    url, _, records = stack[:3]
    return tenant_client(records, url, "cq")


def corpus_with(client, files: dict[str, bytes]) -> tuple[str, dict[str, str]]:
    """A corpus named "reports" of these uploads, each ingested by the worker: (corpus id, {name: document id})."""
    corpus = client.post("/v1/corpora", json={"name": "reports"}).json()["id"]
    ids = {}
    for name, data in files.items():
        r = client.post(f"/v1/documents?corpus_id={corpus}",
                        files={"file": (name, data, "application/octet-stream")})
        assert r.status_code == 201, r.text
        job = wait_job_http(client, r.json()["ingest_job_id"], job_finished, timeout=90)
        assert job["state"] == "done", job
        ids[name] = r.json()["id"]
    return corpus, ids


@pytest.fixture(scope="module")
def corpora(stack):
    """Tenant A's corpus (over the window) and tenant B's, whose document matches the question better."""
    a, b = client_of(stack), client_of(stack)
    files = {
        "plant.pdf": pdf_bytes(words("finance", 6), "Production. The Zanzibar plant made 4711 widgets in 2025."),
        # large and relevant (it mentions widgets): no room once the fact's document is in, so listed as left out
        "warehouse.zip": zip_bytes({"notes/warehouse.md": "BIGDOC-MARKER\n" + words("warehouse", 300)
                                    + "\nThe warehouse also stores widgets.\n"}),
        # large and irrelevant (only words every document has): never packed, never listed
        "archive.zip": zip_bytes({"notes/archive.md": "ARCHIVE-MARKER\n" + words("archive", 300)}),
        **{f"{topic}.pdf": pdf_bytes(words(topic, 8) + f" Many visitors came to the {topic}.")
           for topic in ("canteen", "garden", "fleet")},
    }
    corpus_a, ids_a = corpus_with(a, files)
    corpus_b, ids_b = corpus_with(b, {"b.pdf": pdf_bytes("B-SECRET " + "Zanzibar plant widgets made 4711. " * 30)})
    yield a, corpus_a, ids_a, b, corpus_b, ids_b
    a.close()
    b.close()


def test_dry_run_selects_the_fact_leaves_out_the_large_document_and_creates_nothing(corpora):
    a, corpus, ids, _, _, ids_b = corpora
    r = a.post(f"/v1/corpora/{corpus}/questions?dry_run=true", json={"question": QUESTION, "max_tokens": 64})
    assert r.status_code == 200, r.text
    plan = r.json()
    used = [d["document_id"] for d in plan["documents"]]
    assert plan["packing"] == "selected" and plan["window_tokens"] == WINDOW
    assert ids["plant.pdf"] in used and ids["warehouse.zip"] not in used and ids["archive.zip"] not in used
    assert used == sorted(used) and [d["doc"] for d in plan["documents"]] == list(range(1, len(used) + 1))
    fact = next(d for d in plan["documents"] if d["document_id"] == ids["plant.pdf"])
    assert {"zanzibar", "widgets", "plant"} <= set(fact["matched_terms"]) and fact["anchors"][0] == "2"
    assert fact["score"] == max(d["score"] for d in plan["documents"])
    skipped = {d["document_id"]: d for d in plan["skipped"]}
    assert ids["warehouse.zip"] in skipped and skipped[ids["warehouse.zip"]]["reason"] == "no room left in the window"
    assert skipped[ids["warehouse.zip"]]["matched_terms"] == ["widgets"] and ids["archive.zip"] not in skipped
    assert "the" in plan["ignored_terms"]  # in every page: says nothing about which document to pick
    assert not set(ids_b.values()) & (set(used) | set(skipped))  # B's better match is never seen
    assert plan["prompt_tokens"] + plan["max_output_tokens"] <= WINDOW
    assert plan["cache_source"] in ("cold", "assumed") and plan["terms"][:3] == ["how", "many", "widgets"]
    assert len(used) == 4  # the fact's document and the three that say "many"
    assert {j["kind"] for j in a.get("/v1/jobs").json()["data"]} == {"ingest"}  # the dry run queued nothing


def test_the_answer_cites_documents_and_pages_verified_per_document(stack, corpora):
    _, llm, _ = stack
    a, corpus, ids, _, _, _ = corpora
    plan = a.post(f"/v1/corpora/{corpus}/questions?dry_run=true", json={"question": QUESTION,
                                                                        "max_tokens": 64}).json()
    number = {d["document_id"]: d["doc"] for d in plan["documents"]}
    n_fact = number[ids["plant.pdf"]]
    n_other = number[ids["canteen.pdf"]] if ids["canteen.pdf"] in number else next(n for n in number.values()
                                                                                    if n != n_fact)
    llm.default = Reply(content=(f'It made 4711 widgets [doc {n_fact}, p. 2: "plant made 4711 widgets"]; ',
                                 f'not [doc {n_other}, p. 1: "plant made 4711 widgets"] nor [doc 99, p. 1: "x"].'))
    before = len(llm.received)
    job = a.post(f"/v1/corpora/{corpus}/questions", json={"question": QUESTION, "max_tokens": 64})
    assert job.status_code == 202, job.text
    assert job.json()["kind"] == "corpus_answer" and job.json()["params"]["corpus_id"] == corpus
    job = wait_job_http(a, job.json()["id"], job_finished, timeout=90)
    assert job["state"] == "done", job
    result = a.get(f"/v1/results/{job['result_id']}").json()
    cites = [(c["status"], c["doc"], c["document_id"]) for c in result["citations"]]
    other_id = next(d for d, n in number.items() if n == n_other)
    assert cites == [("verified", n_fact, ids["plant.pdf"]), ("unverified", n_other, other_id),
                     ("invalid", 99, None)]
    cov = result["coverage"]
    assert cov["mode"] == "corpus" and cov["packing"] == "selected" and cov["corpus_id"] == corpus
    assert {d["doc"]: d["document_id"] for d in cov["documents"]} == {n: d for d, n in number.items()}
    assert ids["warehouse.zip"] in [d["document_id"] for d in cov["skipped"]]
    sent = [r for r in llm.received[before:] if r.path.endswith("/chat/completions")][-1].body
    prompt = "".join(m["content"] for m in sent["messages"])
    assert "Zanzibar plant made 4711 widgets" in prompt and "B-SECRET" not in prompt and "BIGDOC" not in prompt
    assert "ARCHIVE-MARKER" not in prompt
    assert prompt.count("<document index=") == len(number)
    # the same question again: the leading documents are shared with the last question, so expected from cache
    again = a.post(f"/v1/corpora/{corpus}/questions?dry_run=true", json={"question": QUESTION,
                                                                         "max_tokens": 64}).json()
    assert again["cache_source"] == "assumed" and again["cached_tokens"] >= 128
    assert again["cached_tokens"] % 128 == 0 and again["cached_tokens"] <= again["prompt_tokens"]


def test_filters_and_refusals(corpora):
    a, corpus, ids, b, corpus_b, _ = corpora
    only_pdf = a.post(f"/v1/corpora/{corpus}/questions?dry_run=true",
                      json={"question": QUESTION, "max_tokens": 64, "kinds": ["pdf"]}).json()
    assert only_pdf["packing"] == "all" and ids["warehouse.zip"] not in {d["document_id"]
                                                                         for d in only_pdf["documents"]}
    r = a.post(f"/v1/corpora/{corpus}/questions", json={"question": "BIGDOC", "max_tokens": 64,
                                                         "kinds": ["codebase"]})
    assert r.status_code == 422 and "larger than" in r.json()["detail"], r.text
    r = a.post(f"/v1/corpora/{corpus}/questions", json={"question": "xylophone quasar", "max_tokens": 64})
    assert r.status_code == 422 and "matches a word of the question" in r.json()["detail"], r.text
    future = a.post(f"/v1/corpora/{corpus}/questions?dry_run=true",
                    json={"question": QUESTION, "uploaded_after": "2999-01-01T00:00:00Z"})
    assert future.status_code == 422 and "no ready documents" in future.json()["detail"]
    assert b.post(f"/v1/corpora/{corpus}/questions", json={"question": QUESTION}).status_code == 404
    assert b.post(f"/v1/corpora/{corpus}/questions?dry_run=true", json={"question": QUESTION}).status_code == 404
    assert a.post(f"/v1/corpora/{corpus_b}/questions", json={"question": QUESTION}).status_code == 404
    assert a.post(f"/v1/corpora/{corpus}/questions", json={"question": ""}).status_code == 422


def test_cli_ask_over_a_corpus(stack, corpora):
    """`wholedoc ask --corpus NAME Q [--dry-run]` against the deployment: every positional argument is a question."""
    import json
    import os
    import subprocess
    import sys

    url, llm, _ = stack
    a, corpus, ids, _, _, _ = corpora
    env = {**os.environ, "WHOLEDOC_API_URL": url, "WHOLEDOC_API_KEY": a.key}

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "api.cli", "ask", "--corpus", "reports", *args], env=env,
                              capture_output=True, text=True, timeout=120)

    r = cli(QUESTION, "Who runs the canteen?", "--dry-run", "--max-tokens", "64", "--json")
    assert r.returncode == 0, r.stderr
    plans = [json.loads(line) for line in r.stdout.splitlines()]
    assert [p["question"] for p in plans] == [QUESTION, "Who runs the canteen?"]
    assert ids["plant.pdf"] in [d["document_id"] for d in plans[0]["documents"]]
    r = cli(QUESTION, "--dry-run", "--max-tokens", "64")
    assert r.returncode == 0 and "selected:" in r.stdout and "left out " + ids["warehouse.zip"] in r.stdout, r
    jobs_before = len(a.get("/v1/jobs", params={"limit": 100}).json()["data"])
    n_fact = next(d["doc"] for d in plans[0]["documents"] if d["document_id"] == ids["plant.pdf"])
    llm.default = Reply(content=(f'4711 [doc {n_fact}, p. 2: "made 4711 widgets"].',))
    r = cli(QUESTION, "--max-tokens", "64")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == f'4711 [doc {n_fact}, p. 2: "made 4711 widgets"].'
    assert "verified" in r.stderr and f"doc {n_fact} = " in r.stderr and "left out for lack of room" in r.stderr
    assert len(a.get("/v1/jobs", params={"limit": 100}).json()["data"]) == jobs_before + 1
    r = subprocess.run([sys.executable, "-m", "api.cli", "ask", "--corpus", "nope", "q?"], env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 1 and "no corpus named 'nope'" in r.stderr
