"""API + worker overhead per summarize job, excluding inference: `python -m api.bench_overhead [--jobs N]`.

Starts PostgreSQL-backed uvicorn, a Celery worker (solo) on a private redis-server, and a stub OpenAI-compatible
server that answers at once and times itself. For each job: wall time from POST /summaries to the job reading
`done`, minus the stub's time for the request. Baseline in the same run: the same prompt sent straight through
pipeline.client (no API, no queue, no database). Prints a table, then one JSON line.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx

from api.loopback import free_port, wait_http
from pipeline.client import ClientConfig, InferenceClient
from pipeline.records.db import make_engine, session_factory, transaction
from pipeline.records.scratch import postgres_reachable, scratch_postgres
from pipeline.records.tenants import create_api_key, create_tenant

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


class StubLLM:
    """Streams a three-chunk answer at once; `served` keeps each request's server-side seconds."""

    def __init__(self):
        self.served: list[float] = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                start = time.perf_counter()
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                chunks = [{"choices": [{"index": 0, "delta": {"content": t}, "finish_reason": None}]}
                          for t in ("A short ", "summary ", "[p. 1].")]
                chunks.append({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
                chunks.append({"choices": [], "usage": {"prompt_tokens": 100, "completion_tokens": 3,
                                                        "prompt_tokens_details": {"cached_tokens": 0}}})
                body = "".join(f"data: {json.dumps(c)}\n\n" for c in chunks) + "data: [DONE]\n\n"
                data = body.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                stub.served.append(time.perf_counter() - start)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

def _pdf() -> bytes:
    import pymupdf

    doc = pymupdf.open()
    for i in range(3):
        doc.new_page().insert_text((72, 72), f"Benchmark page {i + 1}: revenue grew.")
    return doc.tobytes()

def _pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(p / 100 * (len(xs) - 1)))]


def run(num_jobs: int, db_url: str, tmp: Path) -> dict:
    stub = StubLLM()
    rport = free_port()
    redis = subprocess.Popen([shutil.which("redis-server"), "--port", str(rport), "--save", "", "--appendonly", "no",
                              "--dir", str(tmp)], stdout=subprocess.DEVNULL)
    env = {**os.environ, "WHOLEDOC_DATABASE_URL": db_url, "WHOLEDOC_BROKER_URL": f"redis://127.0.0.1:{rport}/0",
           "WHOLEDOC_BLOB_URL": f"file://{tmp / 'blobs'}", "WHOLEDOC_INFERENCE_URL": stub.url,
           "WHOLEDOC_HOME": str(tmp), "WHOLEDOC_SSE_POLL_SECONDS": "0.01",
           "WHOLEDOC_RATE_PER_MIN": "0"}  # polling every 10 ms is far over a key's default rate limit
    aport = free_port()
    procs = [redis,
             subprocess.Popen([str(BIN / "celery"), "-A", "workers.app", "worker", "--pool=solo", "--without-gossip",
                               "--without-mingle", "--without-heartbeat", "-Q", "ingest,llm,maintenance",
                               "--loglevel=WARNING"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL),
             subprocess.Popen([str(BIN / "uvicorn"), "api.main:create_app", "--factory", "--port", str(aport),
                               "--log-level", "warning"], cwd=ROOT, env=env)]
    try:
        base = f"http://127.0.0.1:{aport}"
        wait_http(f"{base}/health")
        engine = make_engine(db_url)
        with transaction(session_factory(engine)) as s:
            tenant = create_tenant(s, f"bench-{time.time_ns()}")
            _, key = create_api_key(s, tenant.id)
        engine.dispose()
        client = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=30)
        doc = client.post("/v1/documents", files={"file": ("b.pdf", _pdf())}).json()

        def wait(job_id: str) -> dict:
            while True:
                job = client.get(f"/v1/jobs/{job_id}").json()
                if job["state"] in ("done", "failed", "cancelled"):
                    return job
                time.sleep(0.01)  # NOTE: tighter polling steals CPU from the worker on small machines

        assert wait(doc["ingest_job_id"])["state"] == "done", "ingest failed"
        e2e, inference, post, queued, worker = [], [], [], [], []
        for i in range(num_jobs + 3):  # 3 warm-ups
            stub.served.clear()
            t0 = time.perf_counter()
            job = client.post(f"/v1/documents/{doc['id']}/summaries", json={"style": "brief"}).json()
            tp = time.perf_counter()
            job = wait(job["id"])
            t1 = time.perf_counter()
            assert job["state"] == "done", job
            if i >= 3:
                e2e.append(t1 - t0)
                inference.append(sum(stub.served))
                post.append(tp - t0)
                ts = {k: datetime.fromisoformat(job[k]) for k in ("created_at", "started_at", "finished_at")}
                queued.append((ts["started_at"] - ts["created_at"]).total_seconds())
                worker.append((ts["finished_at"] - ts["started_at"]).total_seconds())
        # baseline: the same request straight through the inference client, no API / queue / database
        direct = []
        with InferenceClient(ClientConfig(base_url=stub.url, model="wholedoc")) as llm:
            messages = [{"role": "system", "content": "x"}, {"role": "user", "content": "y" * 2000}]
            for i in range(num_jobs + 3):
                t0 = time.perf_counter()
                llm.chat(messages, max_tokens=512, thinking=False)
                if i >= 3:
                    direct.append(time.perf_counter() - t0)
    finally:
        for p in reversed(procs):
            p.terminate()
            p.wait(15)
    overhead = [a - b for a, b in zip(e2e, inference)]
    return {"jobs": num_jobs, "e2e": e2e, "inference": inference, "overhead": overhead, "direct": direct,
            "post": post, "queued": queued, "worker": worker}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=30, help="summarize jobs to time end to end (the first 3 warm up)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="wholedoc-bench-") as tmp:
        if postgres_reachable():
            with scratch_postgres() as url:
                out, db = run(args.jobs, url, Path(tmp)), "postgresql"
        else:
            from pipeline.records.db import upgrade

            url = f"sqlite:///{tmp}/bench.sqlite"
            upgrade(url)
            out, db = run(args.jobs, url, Path(tmp)), "sqlite"
    rows = [("API+worker, whole job", out["e2e"]), ("  of which inference (stub)", out["inference"]),
            ("API+worker overhead", out["overhead"]), ("  POST /summaries answered", out["post"]),
            ("  created → claimed (queue)", out["queued"]), ("  claimed → done (worker)", out["worker"]),
            ("baseline: client.chat direct", out["direct"])]
    print(f"{args.jobs} summarize jobs, {db}, Redis broker, solo worker, stub LLM")
    print(f"{'':32s} {'p50 ms':>8s} {'p95 ms':>8s} {'mean ms':>8s}")
    for name, xs in rows:
        print(f"{name:32s} {_pct(xs, 50) * 1e3:8.1f} {_pct(xs, 95) * 1e3:8.1f} {statistics.mean(xs) * 1e3:8.1f}")
    summary = {"bench": "api_overhead", "jobs": args.jobs, "database": db,
               "overhead_p50_ms": round(_pct(out["overhead"], 50) * 1e3, 2),
               "overhead_p95_ms": round(_pct(out["overhead"], 95) * 1e3, 2),
               "job_p50_ms": round(_pct(out["e2e"], 50) * 1e3, 2),
               "direct_p50_ms": round(_pct(out["direct"], 50) * 1e3, 2),
               "direct_p95_ms": round(_pct(out["direct"], 95) * 1e3, 2)}
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
