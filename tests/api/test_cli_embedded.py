"""Embedded mode end to end, with nothing but a checkpoint configured: `wholedoc summarize FILE` starts SQLite,
a local blob folder, kombu's SQLAlchemy broker, a worker, beat, uvicorn and the real inference server on the
`tiny` random-weight checkpoint, prints a result, and stops every process it started."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.api.helpers import make_pdf

pytestmark = [pytest.mark.services, pytest.mark.slow]


def _children_of_home(home) -> list[str]:
    """Command lines of live processes whose environment names this WHOLEDOC_HOME (read from /proc)."""
    found, marker = [], f"WHOLEDOC_HOME={home}".encode()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if marker in (proc / "environ").read_bytes().split(b"\0"):
                found.append((proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"))
        except OSError:
            pass
    return found


def test_embedded_summarize_on_the_tiny_checkpoint(tiny_checkpoint, tmp_path):
    pdf = tmp_path / "sample.pdf"
    pdf.write_bytes(make_pdf("The annual report", pages=2))
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("WHOLEDOC_")}
    env |= {"WHOLEDOC_HOME": str(home), "WHOLEDOC_CHECKPOINT": str(tiny_checkpoint)}
    r = subprocess.run([sys.executable, "-m", "api.cli", "summarize", str(pdf), "--max-tokens", "24"], env=env,
                       capture_output=True, text=True, timeout=240)
    assert r.returncode == 0, r.stderr + "\n".join(p.read_text()[-2000:] for p in (home / "logs").glob("*.log"))
    assert r.stdout.strip(), "no summary text printed"
    assert "sample.pdf: pdf, 2 pages, " in r.stderr, r.stderr  # pages, as `wholedoc ingest` says (not "sections")
    completion = re.search(r"(\d+) completion tokens", r.stderr)
    assert completion and 0 < int(completion.group(1)) <= 24, r.stderr  # the cap reached the inference server
    assert (home / "wholedoc.sqlite").exists() and (home / "broker.sqlite").exists()
    assert any((home / "blobs").rglob("*")), "the upload was not kept in the local blob folder"
    assert _children_of_home(home) == [], "embedded processes were left running"
