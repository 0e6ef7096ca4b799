"""Load on loopback: `python -m api.bench_load [--seconds 60] [--tenants 4] [--checkpoint DIR]` (docs/reliability.md,
"Load").

Starts a private redis-server, uvicorn and a Celery worker (2 processes) on a scratch PostgreSQL database, and the
inference server on a checkpoint (by default a `tiny` one written to a temporary folder), with limits set low: 600
requests a minute per key (bursts of 20), 3 active jobs per tenant, 6 in all. Then locust, headless, bound to
127.0.0.1 (api/load_users.py): `--tenants` tenants, two users each, for `--seconds`, uploading, summarizing, asking and
listing jobs faster than those limits. Prints requests/s, p50/p95/p99 per route, the 429/503 counts and the 5xx count
(must be 0), API and worker RSS after a warm-up (a quarter of the run, at least 5 s) and at the end (sampled every
5 s, the median of three each; growth must stay within 10 %), then one JSON line. Exits 1 when either bound is broken.
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
import psutil

from api.bench_batch import BIN, FINAL, ROOT, _pdf, _stop
from api.loopback import free_port, wait_http
from pipeline.records.db import make_engine, session_factory, transaction
from pipeline.records.scratch import postgres_reachable, scratch_postgres
from pipeline.records.tenants import create_api_key, create_tenant

LIMITS = {"WHOLEDOC_RATE_PER_MIN": "600", "WHOLEDOC_RATE_BURST": "20", "WHOLEDOC_MAX_ACTIVE_JOBS": "3",
          "WHOLEDOC_MAX_ACTIVE_JOBS_TOTAL": "6"}
MAX_GROWTH = 0.10


def _rss(proc: subprocess.Popen) -> int:
    """Resident bytes of a process and its children (a prefork worker's pool)."""
    p = psutil.Process(proc.pid)
    return sum(x.memory_info().rss for x in [p, *p.children(recursive=True)] if x.is_running())


def _median(samples: list[tuple], i: int) -> int:
    values = sorted(x[i] for x in samples)
    return values[len(values) // 2]


def _tenants(db_url: str, n: int) -> list[str]:
    """n new tenants on the database: their API keys."""
    engine = make_engine(db_url)
    out = []
    with transaction(session_factory(engine)) as s:
        for i in range(n):
            tenant = create_tenant(s, f"load-{i}-{time.time_ns()}")
            out.append(create_api_key(s, tenant.id)[1])
    engine.dispose()
    return out


def _get(client: httpx.Client, path: str) -> dict:
    """GET under the rate limit: waits out a 429's Retry-After."""
    while (r := client.get(path)).status_code == 429:
        time.sleep(float(r.headers.get("retry-after", "1")))
    r.raise_for_status()
    return r.json()


def _ready_document(client: httpx.Client, pdf: bytes) -> str:
    """Upload one document and wait for its ingest (polling within the rate limit): its id."""
    doc = client.post("/v1/documents", files={"file": ("ready.pdf", pdf, "application/pdf")}).json()
    while (job := _get(client, f"/v1/jobs/{doc['ingest_job_id']}"))["state"] not in FINAL:
        time.sleep(0.5)
    if job["state"] != "done":
        raise RuntimeError(f"the warm-up document failed to ingest: {job['error']}")
    return doc["id"]


def run(args, db_url: str, tmp: Path) -> dict:
    checkpoint = args.checkpoint
    if checkpoint is None:
        checkpoint = str(tmp / "tiny")
        subprocess.run([sys.executable, "-m", "inference.devcheckpoint", "--out", checkpoint, "--preset", "tiny"],
                       cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    iport, rport, aport = free_port(), free_port(), free_port()
    env = {**os.environ, "WHOLEDOC_DATABASE_URL": db_url, "WHOLEDOC_BROKER_URL": f"redis://127.0.0.1:{rport}/0",
           "WHOLEDOC_BLOB_URL": f"file://{tmp / 'blobs'}", "WHOLEDOC_INFERENCE_URL": f"http://127.0.0.1:{iport}/v1",
           "WHOLEDOC_HOME": str(tmp), "WHOLEDOC_LOG_LEVEL": "warning", **LIMITS}
    procs = []
    try:
        procs.append(subprocess.Popen([sys.executable, "-m", "inference.serve", "--checkpoint", checkpoint, "--port",
                                       str(iport), "--log-level", "warning"], cwd=ROOT,
                                      stdout=(tmp / "inference.log").open("ab"), stderr=subprocess.STDOUT))
        procs.append(subprocess.Popen([shutil.which("redis-server"), "--port", str(rport), "--bind", "127.0.0.1",
                                       "--save", "", "--appendonly", "no", "--dir", str(tmp)],
                                      stdout=subprocess.DEVNULL))
        worker = subprocess.Popen([str(BIN / "celery"), "-A", "workers.app", "worker", "--concurrency", "2",
                                   "--without-gossip", "--without-mingle", "--without-heartbeat", "-Q",
                                   "ingest,llm,maintenance", "--loglevel=WARNING"], cwd=ROOT, env=env,
                                  stdout=(tmp / "worker.log").open("ab"), stderr=subprocess.STDOUT)
        api = subprocess.Popen([str(BIN / "uvicorn"), "api.main:create_app", "--factory", "--host", "127.0.0.1",
                                "--port", str(aport), "--log-level", "warning"], cwd=ROOT, env=env,
                               stdout=(tmp / "uvicorn.log").open("ab"), stderr=subprocess.STDOUT)
        procs += [worker, api]
        base = f"http://127.0.0.1:{aport}"
        wait_http(f"http://127.0.0.1:{iport}/health", 600)
        wait_http(f"{base}/health")
        pdfs = tmp / "pdfs"
        pdfs.mkdir()
        for i in range(40):
            (pdfs / f"load{i}.pdf").write_bytes(_pdf(100 + i, 1))
        pairs = []
        for key in _tenants(db_url, args.tenants):  # one ready document each, before the load starts
            with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=120) as c:
                pairs.append(f"{key}={_ready_document(c, _pdf(len(pairs), 2))}")
        out = tmp / "locust.json"
        lenv = {**os.environ, "WD_LOAD_TENANTS": ",".join(pairs), "WD_LOAD_PDFS": str(pdfs), "WD_LOAD_OUT": str(out)}
        users = 2 * args.tenants
        locust = subprocess.Popen([str(BIN / "locust"), "-f", str(ROOT / "api" / "load_users.py"), "--headless",
                                   "--host", base, "-u", str(users), "-r", str(users), "-t", f"{args.seconds}s",
                                   "--only-summary", "--loglevel", "WARNING", "--web-host", "127.0.0.1"],
                                  cwd=ROOT, env=lenv, stdout=(tmp / "locust.log").open("ab"),
                                  stderr=subprocess.STDOUT)
        t0, samples = time.monotonic(), []  # (seconds into the run, api RSS, worker RSS) every 5 s
        while locust.poll() is None and time.monotonic() - t0 < args.seconds + 120:
            samples.append((round(time.monotonic() - t0), _rss(api), _rss(worker)))
            time.sleep(5)
        locust.wait(30)
        samples.append((round(time.monotonic() - t0), _rss(api), _rss(worker)))
        # a worker's RSS swings by ~100 MiB with the task in hand (a PDF open, a prompt tokenized): growth compares
        # the median of the three samples after the warm-up with the median of the last three
        after = [x for x in samples if x[0] >= max(5.0, args.seconds / 4)]
        warm = {"api": _median(after[:3], 1), "worker": _median(after[:3], 2)}
        end = {"api": _median(samples[-3:], 1), "worker": _median(samples[-3:], 2)}
        if not out.exists():
            raise RuntimeError(f"locust wrote no figures; its log: {(tmp / 'locust.log').read_text()[-2000:]}")
        figures = json.loads(out.read_text())
    finally:
        for p in reversed(procs):
            _stop(p)
    figures["rss_warm"], figures["rss_end"] = warm, end
    figures["rss_samples_mib"] = [(t, round(a / 2**20), round(w / 2**20)) for t, a, w in samples]
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=60, help="length of the load (at most 600)")
    parser.add_argument("--tenants", type=int, default=4, help="tenants, two locust users each (at most 16)")
    parser.add_argument("--checkpoint", default=None, help="a checkpoint folder (default: a tiny one, written now)")
    args = parser.parse_args(argv)
    if not 10 <= args.seconds <= 600 or not 1 <= args.tenants <= 16:
        parser.error("--seconds must be 10..600 and --tenants 1..16 (the load stays bounded)")
    if not postgres_reachable():
        print("PostgreSQL is not reachable on 127.0.0.1:5432 (user postgres)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="wholedoc-load-") as tmp, scratch_postgres() as url:
        f = run(args, url, Path(tmp))
    count = {code: sum(r["status"].get(code, 0) for r in f["routes"].values()) for code in ("429", "503")}
    five = sum(n for r in f["routes"].values() for code, n in r["status"].items()
               if code.startswith("5") and code != "503")
    growth = {k: f["rss_end"][k] / f["rss_warm"][k] - 1 for k in ("api", "worker")}
    print(f"{args.tenants} tenants x 2 users, {args.seconds} s on loopback: {f['requests']} requests, "
          f"{f['rps']:.1f} requests/s; limits {LIMITS}")
    print(f"{'route':38} {'requests':>8} {'req/s':>7} {'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7}  statuses")
    for name, r in sorted(f["routes"].items()):
        print(f"{name:38} {r['requests']:>8} {r['rps']:>7.1f} {r['p50_ms']:>7.0f} {r['p95_ms']:>7.0f} "
              f"{r['p99_ms']:>7.0f}  {r['status']}")
    print(f"429: {count['429']}  503: {count['503']}  other 5xx: {five} (must be 0)")
    for k in ("api", "worker"):
        print(f"{k} RSS: {f['rss_warm'][k] / 2**20:.0f} MiB after warm-up, {f['rss_end'][k] / 2**20:.0f} MiB at the "
              f"end ({growth[k]:+.1%}; must stay within {MAX_GROWTH:.0%})")
    print("RSS every 5 s (s, api MiB, worker MiB):", f["rss_samples_mib"])
    ok = five == 0 and all(g <= MAX_GROWTH for g in growth.values())
    print(json.dumps({"bench": "load", "seconds": args.seconds, "tenants": args.tenants, "requests": f["requests"],
                      "rps": f["rps"], "routes": {n: {k: r[k] for k in ("requests", "p50_ms", "p95_ms", "p99_ms")}
                                                  for n, r in f["routes"].items()},
                      "status_429": count["429"], "status_503": count["503"], "status_5xx": five,
                      "rss_growth": {k: round(g, 4) for k, g in growth.items()}, "ok": ok}))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
