"""A question over a corpus on the real inference server: the `tiny` checkpoint served with a 4,096-token window
(`--max-model-len`, reported by /v1/models, which is what the API and the job plan for), uvicorn, a Celery worker,
PostgreSQL, Redis. The corpus is over the window: the fact's document goes in, the large irrelevant one is left
out, another tenant's better match is never used, and the prompt the server took fits its window."""

import subprocess
import sys

import pytest

from pipeline.records.db import make_engine, session_factory
from tests.api.helpers import job_finished, wait_job_http
from tests.api.test_corpus_questions import QUESTION, client_of, corpus_with, pdf_bytes, words, zip_bytes
from tests.helpers.services import free_port, redis_db, start_worker, stop, uvicorn_api, wait_healthy

pytestmark = [pytest.mark.services, pytest.mark.slow]
WINDOW = 4096


@pytest.fixture(scope="module")
def real(pg_url, redis_url, tiny_checkpoint, tmp_path_factory):
    logs = tmp_path_factory.mktemp("corpus-real")
    port = free_port()
    inference = subprocess.Popen([sys.executable, "-m", "inference.serve", "--checkpoint", str(tiny_checkpoint),
                                  "--port", str(port), "--max-model-len", str(WINDOW), "--log-level", "info"],
                                 stdout=(logs / "inference.log").open("wb"), stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    worker = None
    engine = make_engine(pg_url)
    try:
        wait_healthy(base, inference, f"inference server (log: {logs / 'inference.log'})", 180)
        env = {"WHOLEDOC_DATABASE_URL": pg_url, "WHOLEDOC_BROKER_URL": redis_db(redis_url, 12),  # own queues
               "WHOLEDOC_BLOB_URL": f"file://{logs / 'blobs'}", "WHOLEDOC_INFERENCE_URL": f"{base}/v1",
               "WHOLEDOC_MODEL": "wholedoc", "WHOLEDOC_LEASE_SECONDS": "10", "WHOLEDOC_HOME": str(logs)}
        worker = start_worker(env, logs / "worker.log", name="corpus-real")
        with uvicorn_api(env, logs / "uvicorn.log") as url:
            yield url, None, session_factory(engine), base  # (api, no fault server, records): as client_of reads it
    finally:
        if worker is not None:
            stop(worker)
        stop(inference)
        engine.dispose()


def test_a_corpus_question_on_the_tiny_checkpoint_uses_the_fact_and_fits_the_window(real):
    a, b = client_of(real), client_of(real)
    corpus, ids = corpus_with(a, {
        "plant.pdf": pdf_bytes(words("finance", 6), "Production. The Zanzibar plant made 4711 widgets in 2025."),
        "warehouse.zip": zip_bytes({"notes/warehouse.md": words("warehouse", 300) + "\nIt stores widgets too.\n"}),
        "archive.zip": zip_bytes({"notes/archive.md": words("archive", 300)}),
        "canteen.pdf": pdf_bytes(words("canteen", 8) + " Many visitors came."),
        "garden.pdf": pdf_bytes(words("garden", 8) + " Many visitors came."),
    })
    _, ids_b = corpus_with(b, {"b.pdf": pdf_bytes("Zanzibar plant widgets made 4711. " * 30)})
    job = a.post(f"/v1/corpora/{corpus}/questions", json={"question": QUESTION, "max_tokens": 16})
    assert job.status_code == 202, job.text
    job = wait_job_http(a, job.json()["id"], job_finished, timeout=240)
    assert job["state"] == "done", job
    result = a.get(f"/v1/results/{job['result_id']}").json()
    cov = result["coverage"]
    used = [d["document_id"] for d in cov["documents"]]
    skipped = [d["document_id"] for d in cov["skipped"]]
    assert cov["packing"] == "selected" and ids["plant.pdf"] in used and ids["warehouse.zip"] in skipped
    assert ids["archive.zip"] not in used + skipped and len(used) == 3
    assert not set(ids_b.values()) & set(used + skipped)
    assert 0 < result["usage"]["prompt_tokens"] <= WINDOW - 16
    # the notice says what the answer was made from (workers/tasks/corpus.py); no WHOLEDOC_RESULT_NOTICE is set here
    assert result["notice"].startswith(f"answered from {len(used)} of the corpus's "), result["notice"]
    assert f"(selected); left out for lack of room: {len(skipped)} relevant" in result["notice"], result["notice"]
    a.close()
    b.close()


def test_bench_corpus_quick_meets_its_floor_on_the_same_server(real):
    """`python -m api.bench_corpus --quick` against this server: id order at least as good as relevance order on every
    question set and better overall (its exit code), with several whole documents per prompt."""
    import json

    r = subprocess.run([sys.executable, "-m", "api.bench_corpus", "--quick", "--url", f"{real[3]}/v1"],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["floor_met"] and out["documents"] >= 20 and out["questions"] == 4 and out["window"] == WINDOW
    assert out["stable_cached_share"] > out["relevance_cached_share"]
    assert min(out["documents_per_prompt"]) >= 2
