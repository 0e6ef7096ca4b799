"""Batches in corpus mode (docs/batches.md#corpus-mode) on real processes: uvicorn, a Celery worker (ingest, dispatch,
the corpus-answer jobs), PostgreSQL, Redis, a local blob folder, and the loopback fault server as the model (it
records every prompt it is sent). The window is small (WHOLEDOC_MAX_MODEL_LEN=4096), so the corpus does not fit and
each question selects the documents its words match.

- one item per question (not per document), each a corpus-answer job; questions selecting the same set run back to
  back (the jobs' start order), and their prompts share everything before the question;
- each item's result carries its documents used and skipped into results.jsonl and results.csv;
- a question that selects nothing fails with the reason; the dry run gives each question's set and tokens;
- 400 for mode corpus without corpus_id; the CLI's `batch --corpus NAME --mode corpus`.
"""

import csv
import io
import json
import os
import subprocess
import sys

import pytest

from pipeline.records.models import BatchItem, Job
from tests.api.test_corpus_questions import client_of, corpus_stack, corpus_with, pdf_bytes, words
from tests.helpers.services import redis_db
from tests.helpers.wait import wait_until

pytestmark = [pytest.mark.services, pytest.mark.slow]
WINDOW = 4096
TOPICS = ("canteen", "garden", "fleet", "harbour", "library", "quarry")
QUESTIONS = [
    "What did the canteen cook?",  # {canteen}
    "When does the garden open?",  # {garden}
    "Who cleans the canteen?",  # {canteen}
    "Which garden plants grow?",  # {garden}
    "Canteen or garden: who visits?",  # {canteen, garden}
    "Qqzxv vvrtk?",  # matches nothing, and the corpus is over the window: fails with the reason
    "Is the canteen open late?",  # {canteen}
]
SETS = [("canteen",), ("garden",), ("canteen",), ("garden",), ("canteen", "garden"), None, ("canteen",)]


@pytest.fixture(scope="module")
def stack(scratch_pg, redis_url, tmp_path_factory):
    logs = tmp_path_factory.mktemp("batch-corpus")
    # one process, one task at a time: jobs start in the order dispatch sent them; beat sweeps a lost step. The
    # database is this module's own: beat's reconciler would re-send every other test's queued job too
    with corpus_stack(scratch_pg(), redis_db(redis_url, 13), logs, WINDOW, "batch-corpus",  # own queues
                      ("-B", "-s", str(logs / "beat")), WHOLEDOC_RECONCILE_SECONDS="1") as stack:
        yield stack


@pytest.fixture(scope="module")
def corpus(stack):
    """Six documents of about 900 tokens each, one topic each (5,400 tokens: over what a 4,096 window leaves)."""
    client = client_of(stack)
    corpus_id, ids = corpus_with(client, {f"{t}.pdf": pdf_bytes(words(t, 30), words(t, 30)) for t in TOPICS})
    yield client, corpus_id, {name.removesuffix(".pdf"): doc_id for name, doc_id in ids.items()}
    client.close()


def _wait_batch(client, batch_id: str) -> dict:
    seen = {}

    def done():
        seen["b"] = client.get(f"/v1/batches/{batch_id}").json()
        return seen["b"]["state"] == "done"

    wait_until(done, 120, lambda: f"batch {batch_id} done (last: {seen.get('b')})", 0.1)
    return seen["b"]


def _key(ids: dict, topics) -> str | None:
    return ",".join(sorted(ids[t] for t in topics)) if topics else None


def test_one_item_per_question_same_sets_back_to_back_with_coverage(stack, corpus):
    _, llm, records = stack
    client, corpus_id, ids = corpus
    sent_before = len(llm.received)
    r = client.post("/v1/batches", json={"questions": QUESTIONS, "corpus_id": corpus_id, "mode": "corpus",
                                         "max_tokens": 16})
    assert r.status_code == 202, r.text
    assert r.json()["mode"] == "corpus" and r.json()["counts"]["total"] == len(QUESTIONS)  # not 6 x 7
    batch = _wait_batch(client, r.json()["id"])
    assert batch["counts"] == {"queued": 0, "running": 0, "done": 6, "failed": 1, "cancelled": 0, "total": 7}

    items = client.get(f"/v1/batches/{batch['id']}/items", params={"limit": 50}).json()["data"]
    assert [i["question_index"] for i in items] == list(range(len(QUESTIONS)))  # listed in question order
    failed = items[5]
    assert failed["state"] == "failed" and failed["job_id"] is None
    assert "matches a word of the question" in failed["error"]
    with records() as s:
        rows = {i.id: i for i in s.query(BatchItem).filter_by(batch_id=batch["id"])}
        jobs = {j.id: j for j in s.query(Job).filter(Job.id.in_([i.job_id for i in rows.values() if i.job_id]))}
    assert {j.kind for j in jobs.values()} == {"corpus_answer"} and len(jobs) == 6
    for item, want in zip(items, SETS, strict=True):
        assert rows[item["id"]].set_key == _key(ids, want), (item["question"], rows[item["id"]].set_key)
        if want:  # the answer used exactly the selected documents, recorded on the item
            assert [d["document_id"] for d in item["coverage"]["documents"]] == sorted(ids[t] for t in want)
            assert item["coverage"]["mode"] == "corpus" and item["coverage"]["packing"] == "selected"

    # the jobs' start order: each set's questions one after another (question order would alternate them)
    order = sorted(jobs.values(), key=lambda j: j.started_at)
    keys = [next(i.set_key for i in rows.values() if i.job_id == j.id) for j in order]
    runs = [k for n, k in enumerate(keys) if n == 0 or keys[n - 1] != k]
    assert len(runs) == len(set(keys)) == 3, keys  # every set in one run
    # and the prompts of one set share everything before the question (the prefix cache's whole document block)
    prompts = ["".join(m["content"] for m in rec.body["messages"]) for rec in llm.received[sent_before:]
               if rec.path.endswith("/chat/completions")]
    assert len(prompts) == 6
    by_key: dict[str, list[str]] = {}
    for key, prompt in zip(keys, prompts, strict=True):
        by_key.setdefault(key, []).append(prompt.split("Question: ")[0])
    assert all(len(set(prefixes)) == 1 for prefixes in by_key.values()), by_key.keys()
    assert len(set(p[0] for p in by_key.values())) == 3

    # the results files carry each item's documents used and skipped
    lines = [json.loads(line) for line in client.get(f"/v1/batches/{batch['id']}/results.jsonl").text.splitlines()]
    assert len(lines) == len(QUESTIONS)
    for line, want in zip(lines, SETS, strict=True):
        assert line["document_id"] is None and line["question"] == QUESTIONS[line["question_index"]]
        assert line["documents_used"] == (sorted(ids[t] for t in want) if want else None)
        assert (line["coverage"] is None) == (want is None)
    table = list(csv.DictReader(io.StringIO(client.get(f"/v1/batches/{batch['id']}/results.csv").text)))
    assert len(table) == len(QUESTIONS)
    assert json.loads(table[4]["documents_used"]) == sorted([ids["canteen"], ids["garden"]])
    assert json.loads(table[0]["documents_skipped"]) == [] and table[5]["documents_used"] == ""


def test_dry_run_gives_each_questions_set_and_tokens_and_creates_nothing(stack, corpus):
    _, llm, _ = stack
    client, corpus_id, ids = corpus
    before = client.get("/v1/batches").json()["data"]
    sent_before = len(llm.received)
    r = client.post("/v1/batches?dry_run=true", json={"questions": QUESTIONS, "corpus_id": corpus_id,
                                                      "mode": "corpus", "max_tokens": 16})
    assert r.status_code == 200, r.text
    est = r.json()
    assert est["mode"] == "corpus" and est["items"] == len(QUESTIONS) and len(est["per_question"]) == len(QUESTIONS)
    by_index = {q["question_index"]: q for q in est["per_question"]}
    for i, want in enumerate(SETS):
        q = by_index[i]
        assert q["set_key"] == _key(ids, want) and q["document_ids"] == (sorted(ids[t] for t in want) if want else [])
        assert (q["error"] is None) == (want is not None) and (q["prompt_tokens"] > 0) == (want is not None)
    order = [q["question_index"] for q in est["per_question"]]  # dispatch order: by set, then question
    assert order.index(2) == order.index(0) + 1 and order.index(6) == order.index(2) + 1
    assert order[0] == 5 and by_index[order[1]]["cached_tokens"] == 0  # the first sent: nothing assumed cached
    for i in (2, 6, 3):  # later questions of a set: its whole prefix, in 128-token blocks
        q = by_index[i]
        assert q["cached_tokens"] >= 768 and q["cached_tokens"] % 128 == 0 and q["cached_tokens"] < q["prompt_tokens"]
    assert est["prompt_tokens"] == sum(q["prompt_tokens"] for q in est["per_question"])
    assert est["cached_tokens"] == sum(q["cached_tokens"] for q in est["per_question"])
    assert client.get("/v1/batches").json()["data"] == before
    # each question is planned once: one cache probe of its prompt per question that selects documents
    probed = ["".join(m["content"] for m in rec.body["messages"]) for rec in llm.received[sent_before:]
              if rec.path.endswith("/cache/probe")]
    assert [sum(q in p for p in probed) for q in QUESTIONS] == [0 if want is None else 1 for want in SETS], probed


def test_mode_corpus_needs_a_corpus(corpus):
    client, corpus_id, ids = corpus
    r = client.post("/v1/batches", json={"questions": ["q?"], "mode": "corpus"})
    assert r.status_code == 400 and "give corpus_id" in r.json()["detail"], r.text
    r = client.post("/v1/batches", json={"questions": ["q?"], "mode": "corpus", "document_ids": [ids["canteen"]]})
    assert r.status_code == 400 and "give corpus_id" in r.json()["detail"], r.text
    r = client.post("/v1/batches", json={"questions": ["q?"], "mode": "corpus", "corpus_id": corpus_id,
                                         "document_ids": [ids["canteen"]]})
    assert r.status_code == 400 and "not document_ids" in r.json()["detail"], r.text
    r = client.post("/v1/batches", json={"questions": ["q?"], "mode": "corpus", "corpus_id": "0" * 32})
    assert r.status_code == 404, r.text
    assert client.post("/v1/batches", json={"questions": ["q?"], "mode": "chunks",
                                            "corpus_id": corpus_id}).status_code == 422


def test_cli_batch_mode_corpus(stack, corpus, tmp_path):
    client, _, ids = corpus
    questions = tmp_path / "questions.txt"
    questions.write_text("Who cleans the canteen?\nWhen does the garden open?\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("WHOLEDOC_")}
    env |= {"WHOLEDOC_API_URL": stack[0], "WHOLEDOC_API_KEY": client.key}

    def wholedoc(*argv: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "api.cli", "batch", str(questions), *argv], env=env,
                              capture_output=True, text=True, timeout=120)

    refused = wholedoc(str(tmp_path), "--mode", "corpus")
    assert refused.returncode == 2 and "--mode corpus" in refused.stderr
    dry = wholedoc("--corpus", "reports", "--mode", "corpus", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    # per_question comes in dispatch order (by the selected set's document ids, which are random): compare by question
    plans = {q["question_index"]: q["document_ids"] for q in json.loads(dry.stdout)["per_question"]}
    assert plans == {0: [ids["canteen"]], 1: [ids["garden"]]}
    out = tmp_path / "results.jsonl"
    ran = wholedoc("--corpus", "reports", "--mode", "corpus", "-o", str(out), "--max-tokens", "8")
    assert ran.returncode == 0, ran.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["question"], r["state"], r["documents_used"]) for r in rows] == [
        ("Who cleans the canteen?", "done", [ids["canteen"]]), ("When does the garden open?", "done", [ids["garden"]])]
