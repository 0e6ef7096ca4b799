"""The locust users of `python -m api.bench_load` (run by it as `locust -f api/load_users.py --headless`; never
imported by the service). Each user is one of the tenants in WD_LOAD_TENANTS (`key=document_id,…`), uploading small
PDFs from WD_LOAD_PDFS, asking for summaries and answers and listing its jobs, faster than the configured limits.
429 and 503 are expected answers (counted, not failures); any other 5xx is a failure. At the end the per-route
figures and status counts are written as JSON to WD_LOAD_OUT. docs/reliability.md ("Load")."""

import itertools
import json
import os
import random
from collections import Counter, defaultdict
from pathlib import Path

from locust import HttpUser, between, events, task

TENANTS = [pair.split("=", 1) for pair in os.environ.get("WD_LOAD_TENANTS", "").split(",") if pair]
PDFS = sorted(Path(os.environ.get("WD_LOAD_PDFS", ".")).glob("*.pdf"))
STATUS: dict[str, Counter] = defaultdict(Counter)
_next = itertools.count()


class Tenant(HttpUser):
    wait_time = between(0.02, 0.1)

    def on_start(self) -> None:
        key, self.document_id = TENANTS[next(_next) % len(TENANTS)]
        self.client.headers["Authorization"] = f"Bearer {key}"
        self.rng = random.Random(next(_next))

    def _call(self, method: str, path: str, name: str, **kw) -> None:
        with self.client.request(method, path, name=name, catch_response=True, **kw) as r:
            STATUS[name][r.status_code] += 1
            if r.status_code in (429, 503) or r.status_code < 400:
                r.success()
            else:
                r.failure(f"{r.status_code}: {r.text[:200]}")

    @task(2)
    def upload(self) -> None:
        pdf = self.rng.choice(PDFS)
        self._call("POST", "/v1/documents", "POST /v1/documents",
                   files={"file": (pdf.name, pdf.read_bytes(), "application/pdf")})

    @task(3)
    def summarize(self) -> None:
        self._call("POST", f"/v1/documents/{self.document_id}/summaries", "POST /v1/documents/{id}/summaries",
                   json={"style": "brief", "max_tokens": 8})

    @task(3)
    def ask(self) -> None:
        self._call("POST", f"/v1/documents/{self.document_id}/questions", "POST /v1/documents/{id}/questions",
                   json={"question": f"What is line {self.rng.randrange(40)} about?", "max_tokens": 8})

    @task(4)
    def jobs(self) -> None:
        self._call("GET", "/v1/jobs?limit=20", "GET /v1/jobs")


@events.test_stop.add_listener
def _write(environment, **_) -> None:
    out = os.environ.get("WD_LOAD_OUT")
    if not out:
        return
    routes = {}
    for entry in environment.stats.entries.values():
        routes[entry.name] = {"requests": entry.num_requests, "rps": round(entry.total_rps, 2),
                              "p50_ms": entry.get_response_time_percentile(0.5),
                              "p95_ms": entry.get_response_time_percentile(0.95),
                              "p99_ms": entry.get_response_time_percentile(0.99),
                              "status": {str(k): v for k, v in sorted(STATUS[entry.name].items())}}
    total = environment.stats.total
    Path(out).write_text(json.dumps({"routes": routes, "requests": total.num_requests,
                                     "rps": round(total.total_rps, 2)}))
