"""Bulk Q&A throughput and prefix-cache reuse: `python -m api.bench_batch [--checkpoint ckpt/small] [--docs 4]
[--questions 16]` (docs/batches.md).

Starts PostgreSQL-backed uvicorn, a Celery worker (4 processes, like compose) on a private redis-server, and the
inference server on the checkpoint, its KV cache sized to hold about `--cache-docs` of the documents at once (measured:
two starts read the pool's block counts for known budgets). Then the same documents x questions twice, each as a fresh
tenant (so neither run finds the other's cache):

- grouped: one batch (`POST /v1/batches`): all questions about a document together, WHOLEDOC_BATCH_DOCS_IN_FLIGHT
  documents at once;
- baseline, naive interleaved: every item as its own question job, submitted at once in question-major order
  (q1 of every document, then q2, ...), as a client looping over documents would.

Items/s is items over the wall time from submission to the last answer; cached share is cached prompt tokens over
prompt tokens, as the engine reported them. Prints a table, then one JSON line.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from api.loopback import free_port, wait_http
from pipeline.records.db import make_engine, session_factory, transaction
from pipeline.records.scratch import postgres_reachable, scratch_postgres
from pipeline.records.tenants import create_api_key, create_tenant

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
BLOCK_TOKENS = 128  # the engine's cache block (docs/cache-layout.md)
FINAL = ("done", "failed", "cancelled")
WORDS = ("revenue cost margin region supplier invoice contract clause renewal penalty delivery warranty audit "
         "forecast budget headcount pipeline churn").split()
def _pdf(doc: int, pages: int) -> bytes:
    """A distinct document of `pages` pages of numbered, varied sentences (no two documents share a prefix)."""
    import pymupdf

    out = pymupdf.open()
    for p in range(pages):
        page = out.new_page()
        lines = [f"Doc {doc} page {p + 1} line {i}: the {WORDS[(doc * 7 + p * 3 + i) % len(WORDS)]} of unit "
                 f"{doc * 1000 + p * 40 + i} was {(doc + 3) * (i + 11) % 997} in {2020 + i % 6}." for i in range(40)]
        page.insert_textbox(page.rect + (36, 36, -36, -36), "\n".join(lines), fontsize=7)
    return out.tobytes()


def _inference(checkpoint: str, port: int, cache_gib: float, log: Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "inference.serve", "--checkpoint", checkpoint, "--port", str(port),
                             "--cache-gib", f"{cache_gib:.4f}", "--log-level", "warning"],
                            cwd=ROOT, stdout=log.open("ab"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 600
    while proc.poll() is None and time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.2)
    _stop(proc)
    raise RuntimeError(f"the inference server did not start; its log: {log.read_text()[-2000:]}")


def _blocks_total(port: int) -> int:
    for line in httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text.splitlines():
        if line.startswith("cache_blocks_total") or "cache_blocks_total " in line and not line.startswith("#"):
            return int(float(line.split()[-1]))
    raise RuntimeError("the inference server's /metrics has no cache_blocks_total")


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


class Stack:
    """redis-server, uvicorn and a Celery worker on one database, pointed at the inference server."""

    def __init__(self, db_url: str, tmp: Path, inference_url: str):
        self.db_url, rport, aport = db_url, free_port(), free_port()
        env = {**os.environ, "WHOLEDOC_DATABASE_URL": db_url, "WHOLEDOC_BROKER_URL": f"redis://127.0.0.1:{rport}/0",
               "WHOLEDOC_BLOB_URL": f"file://{tmp / 'blobs'}", "WHOLEDOC_INFERENCE_URL": inference_url,
               "WHOLEDOC_HOME": str(tmp), "WHOLEDOC_RATE_PER_MIN": "0", "WHOLEDOC_MAX_ACTIVE_JOBS": "0",
               "WHOLEDOC_LOG_LEVEL": "warning"}
        self.procs = [
            subprocess.Popen([shutil.which("redis-server"), "--port", str(rport), "--save", "", "--appendonly", "no",
                              "--dir", str(tmp)], stdout=subprocess.DEVNULL),
            subprocess.Popen([str(BIN / "celery"), "-A", "workers.app", "worker", "--concurrency", "4",
                              "--without-gossip", "--without-mingle", "--without-heartbeat", "-Q",
                              "ingest,llm,maintenance", "--loglevel=WARNING"], cwd=ROOT, env=env,
                             stdout=(tmp / "worker.log").open("ab"), stderr=subprocess.STDOUT),
            subprocess.Popen([str(BIN / "uvicorn"), "api.main:create_app", "--factory", "--port", str(aport),
                              "--log-level", "warning"], cwd=ROOT, env=env)]
        self.base = f"http://127.0.0.1:{aport}"
        wait_http(f"{self.base}/health")

    def tenant(self) -> httpx.Client:
        engine = make_engine(self.db_url)
        with transaction(session_factory(engine)) as s:
            tenant = create_tenant(s, f"bench-{time.time_ns()}")
            _, key = create_api_key(s, tenant.id)
        engine.dispose()
        return httpx.Client(base_url=self.base, headers={"Authorization": f"Bearer {key}"}, timeout=120)

    def close(self) -> None:
        for p in reversed(self.procs):
            _stop(p)


def _upload(client: httpx.Client, pdfs: list[bytes]) -> list[dict]:
    docs = [client.post("/v1/documents", files={"file": (f"d{i}.pdf", pdf)}).json() for i, pdf in enumerate(pdfs)]
    for doc in docs:
        while (job := client.get(f"/v1/jobs/{doc['ingest_job_id']}").json())["state"] not in FINAL:
            time.sleep(0.1)
        assert job["state"] == "done", job
    return [client.get(f"/v1/documents/{d['id']}").json() for d in docs]


def run_grouped(client: httpx.Client, doc_ids: list[str], questions: list[str], max_tokens: int) -> dict:
    t0 = time.perf_counter()
    batch = client.post("/v1/batches", json={"questions": questions, "document_ids": doc_ids,
                                             "max_tokens": max_tokens}).json()
    while (batch := client.get(f"/v1/batches/{batch['id']}").json())["state"] not in ("done", "cancelled"):
        time.sleep(0.2)
    wall = time.perf_counter() - t0
    assert batch["counts"]["done"] == batch["counts"]["total"], batch["counts"]
    return {"items": batch["counts"]["total"], "seconds": wall, "prompt_tokens": batch["prompt_tokens"],
            "cached_tokens": batch["cached_prompt_tokens"]}


def run_interleaved(client: httpx.Client, doc_ids: list[str], questions: list[str], max_tokens: int) -> dict:
    t0 = time.perf_counter()
    jobs = [client.post(f"/v1/documents/{d}/questions", json={"question": q, "max_tokens": max_tokens}).json()
            for q in questions for d in doc_ids]
    pending, done = {j["id"] for j in jobs}, {}
    while pending:
        for job_id in sorted(pending):
            job = client.get(f"/v1/jobs/{job_id}").json()
            if job["state"] in FINAL:
                pending.discard(job_id)
                done[job_id] = job
        time.sleep(0.2)
    wall = time.perf_counter() - t0
    usage = [client.get(f"/v1/results/{j['result_id']}").json()["usage"] for j in done.values() if j["result_id"]]
    assert len(usage) == len(jobs), f"{len(jobs) - len(usage)} questions failed"
    return {"items": len(jobs), "seconds": wall, "prompt_tokens": sum(u["prompt_tokens"] for u in usage),
            "cached_tokens": sum(u["cached_tokens"] or 0 for u in usage)}


def _pool_layout(checkpoint: str, port: int, log: Path) -> tuple[float, float]:
    """(fixed bytes, bytes per history block) of the server's KV pools: two starts with known budgets, read back from
    /metrics (the pools hold some fixed window slots plus the history blocks that prefixes are cached in)."""
    points = []
    for gib in (0.05, 0.1):
        server = _inference(checkpoint, port, gib, log)
        try:
            points.append((gib * 2**30, _blocks_total(port)))
        finally:
            _stop(server)
    (b0, n0), (b1, n1) = points
    per_block = (b1 - b0) / (n1 - n0)
    return b0 - n0 * per_block, per_block


def run(args, db_url: str, tmp: Path) -> dict:
    pdfs = [_pdf(i, args.pages) for i in range(args.docs)]
    port = free_port()
    log = tmp / "inference.log"
    fixed, per_block = _pool_layout(args.checkpoint, port, log)
    stack = Stack(db_url, tmp, f"http://127.0.0.1:{port}/v1")
    server = None
    try:
        doc_tokens = max(d["num_tokens"] for d in _upload(stack.tenant(), pdfs))  # the documents' sizes
        blocks = int(args.cache_docs * (doc_tokens / BLOCK_TOKENS + 4))
        cache_gib = (fixed + (blocks + 1) * per_block) / 2**30
        server = _inference(args.checkpoint, port, cache_gib, log)
        questions = [f"Question {i + 1}: what does line {i} of page 1 say about the unit?"
                     for i in range(args.questions)]
        out = {"doc_tokens": doc_tokens, "cache_blocks": _blocks_total(port), "cache_gib": cache_gib}
        for name, fn in (("interleaved", run_interleaved), ("grouped", run_grouped)):
            client = stack.tenant()
            ids = [d["id"] for d in _upload(client, pdfs)]
            out[name] = fn(client, ids, questions, args.max_tokens)
    finally:
        stack.close()
        if server is not None:
            _stop(server)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Bulk Q&A throughput and prefix-cache reuse: one grouped batch vs "
                                     "the same questions interleaved (docs/batches.md).")
    parser.add_argument("--checkpoint", default="ckpt/small", help="a checkpoint folder (python -m "
                        "inference.devcheckpoint --out ckpt/small --preset small)")
    parser.add_argument("--docs", type=int, default=4, help="generated documents (default 4)")
    parser.add_argument("--questions", type=int, default=16, help="questions about each document (default 16)")
    parser.add_argument("--pages", type=int, default=3, help="pages per document")
    parser.add_argument("--max-tokens", type=int, default=8, help="answer cap per item")
    parser.add_argument("--cache-docs", type=float, default=2.5, help="the KV cache holds about this many documents: "
                        "more than grouped dispatch keeps in flight, fewer than the naive order runs at once, so "
                        "the naive order's prompts evict each other (the engine preempts; docs/batches.md)")
    args = parser.parse_args(argv)
    if not Path(args.checkpoint, "config.json").is_file():
        print(f"no checkpoint at {args.checkpoint}: make one with python -m inference.devcheckpoint --out "
              f"{args.checkpoint} --preset small", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="wholedoc-bench-batch-") as tmp:
        if postgres_reachable():
            with scratch_postgres() as url:
                out = run(args, url, Path(tmp))
        else:
            from pipeline.records.db import upgrade

            url = f"sqlite:///{tmp}/bench.sqlite"
            upgrade(url)
            out = run(args, url, Path(tmp))
    load = os.getloadavg()[0]
    print(f"{args.docs} documents x {args.questions} questions on {args.checkpoint}, {out['doc_tokens']:,} tokens per "
          f"document, KV cache {out['cache_blocks']} blocks (~{args.cache_docs:g} documents), load {load:.1f}")
    print(f"{'dispatch':24s} {'items':>6s} {'seconds':>8s} {'items/s':>8s} {'prompt tok':>11s} {'cached':>9s} "
          f"{'share':>6s}")
    summary = {"bench": "batch", "checkpoint": args.checkpoint, "docs": args.docs, "questions": args.questions,
               "doc_tokens": out["doc_tokens"], "cache_blocks": out["cache_blocks"], "load_avg": round(load, 2)}
    for name, label in (("grouped", "grouped (batch)"), ("interleaved", "baseline: interleaved")):
        r = out[name]
        rate, share = r["items"] / r["seconds"], r["cached_tokens"] / max(1, r["prompt_tokens"])
        print(f"{label:24s} {r['items']:6d} {r['seconds']:8.1f} {rate:8.2f} {r['prompt_tokens']:11,} "
              f"{r['cached_tokens']:9,} {share:6.0%}")
        summary |= {f"{name}_items_per_s": round(rate, 3), f"{name}_cached_share": round(share, 4),
                    f"{name}_seconds": round(r["seconds"], 2)}
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
