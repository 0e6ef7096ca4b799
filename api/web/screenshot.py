"""`python -m api.web.screenshot [--out docs/figures/web-page.png]`: regenerate the README's picture of the web page.

Starts `wholedoc serve` as a process in a temporary home (embedded mode: SQLite, a local blob folder; no inference
server), signs in through the page with a new key, uploads `wholedoc sample`'s PDF by the page's file picker and lets
the worker extract it. The answer shown is written into the records the way a worker stores one, its citations
verified against the extracted text, because a random-weight development checkpoint writes no citations (the browser
tests script the model for the same reason: docs/web.md). Needs Debian's `chromium` and the `playwright` package
(scripts/setup.sh installs both). Reaches the command line only as processes, like every module of api/ outside
api/cli.
"""

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from api.loopback import free_port

ROOT = Path(__file__).resolve().parents[2]
ANSWER = ('Revenue was 41.2 million euros in 2025, up 12 percent [p. 2: "up 12 percent from 36.8 million in 2024"], '
          'with maintenance contracts growing fastest [p. 2: "Maintenance contracts grew fastest, by 23 percent"]. '
          'Management expects 44 to 46 million euros in 2026 [p. 4: "expects revenue of 44 to 46 million euros in '
          '2026"] and a record quarter [p. 3: "a record quarter"].')
QUESTION = "How did revenue develop, and what is expected?"

def _cli(env: dict, *args: str) -> str:
    r = subprocess.run([sys.executable, "-m", "api.cli", *args], env=env, cwd=ROOT, capture_output=True, text=True,
                       timeout=120)
    if r.returncode != 0:
        raise SystemExit(f"wholedoc {' '.join(args)} failed: {r.stderr.strip()}")
    return r.stdout


def _stage_answer(database_url: str, tenant_id: str, document_id: str, pdf: Path) -> str:
    """A finished answer job with its result, stored as the worker stores one; returns the job id."""
    from dataclasses import asdict

    from pipeline.citations import verify_citations
    from pipeline.ingest import ingest_path
    from pipeline.records import jobs
    from pipeline.records.db import make_engine, session_factory, transaction

    cited = [asdict(c) for c in verify_citations(ANSWER, ingest_path(pdf))]
    engine = make_engine(database_url)
    try:
        with transaction(session_factory(engine)) as s:
            job = jobs.create_job(s, tenant_id, "answer", document_id=document_id,
                                  params={"question": QUESTION, "thinking": False, "max_tokens": 1024})
            jobs.claim_job(s, job.id, "screenshot", 60)
            jobs.finish_job(s, job.id, "screenshot", text=ANSWER, citations=cited,
                            usage={"prompt_tokens": 812, "completion_tokens": 74, "cached_tokens": 768})
            return job.id
    finally:
        engine.dispose()


def take(out: Path, chromium: str, width: int = 1100) -> Path:
    from playwright.sync_api import sync_playwright

    home = Path(tempfile.mkdtemp(prefix="wholedoc-screenshot-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("WHOLEDOC_")}
    env |= {"WHOLEDOC_HOME": str(home), "WHOLEDOC_INFERENCE_URL": "http://127.0.0.1:9/v1", "WHOLEDOC_LOG_LEVEL":
            "warning"}
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    serve = subprocess.Popen([sys.executable, "-m", "api.cli", "serve", "--port", str(port)], env=env, cwd=ROOT,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(300):
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if serve.poll() is not None:
                raise SystemExit(f"wholedoc serve exited with {serve.returncode} (logs: {home / 'logs'})")
            time.sleep(0.3)
        _cli(env, "admin", "create-tenant", "Northwind")
        key = _cli(env, "admin", "create-key", "Northwind").split()[-1]
        pdf = home / "northwind-report.pdf"
        _cli(env, "sample", str(pdf))
        database_url = json.loads(_cli(env, "config", "--json"))["WHOLEDOC_DATABASE_URL"]["value"]
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])
            page = browser.new_page(base_url=base, viewport={"width": width, "height": 900})
            page.goto("/")
            page.get_by_label("API key").fill(key)
            page.get_by_role("button", name="Sign in").click()
            page.get_by_role("navigation", name="Sections").wait_for()
            page.set_input_files("#file", str(pdf))
            listed = page.get_by_role("list", name="Documents", exact=True)
            listed.locator(".badge", has_text="ready").wait_for(timeout=120_000)
            session = httpx.get(f"{base}/v1/session", headers={"Authorization": f"Bearer {key}"}).json()
            doc = httpx.get(f"{base}/v1/documents", headers={"Authorization": f"Bearer {key}"}).json()["data"][0]
            job_id = _stage_answer(database_url, session["tenant_id"], doc["id"], pdf)
            page.goto(f"/#/documents/{doc['id']}")
            page.get_by_role("button", name="Summarize").wait_for()
            page.goto(f"/#/jobs/{job_id}")
            page.locator(".job .result a.cite").first.wait_for()
            page.locator(".job .result a.cite").first.click()
            page.wait_for_function("() => document.getElementById('page-img').naturalWidth > 0")
            page.evaluate("() => document.getElementById('page-dialog').close()")
            out.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(out), full_page=True)
            browser.close()
    finally:
        serve.send_signal(signal.SIGTERM)
        try:
            serve.wait(60)
        except subprocess.TimeoutExpired:
            serve.kill()
        shutil.rmtree(home, ignore_errors=True)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m api.web.screenshot", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "figures" / "web-page.png",
                        help="where to write the PNG (default: %(default)s)")
    parser.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium",
                        help="the browser to drive (default: %(default)s)")
    args = parser.parse_args(argv)
    print(f"wrote {take(args.out, args.chromium)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
