"""`-` reads the file argument (or --questions-file) from standard input, named by what its bytes are."""

import json
import subprocess
import sys
from pathlib import Path

from tests.api.helpers import make_pdf, make_zip

ROOT = Path(__file__).resolve().parents[2]


def _cli(*args: str, stdin: bytes) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "api.cli", *args], cwd=ROOT, input=stdin, capture_output=True,
                          timeout=120)


def test_ingest_reads_a_pdf_from_standard_input():
    r = _cli("ingest", "-", "--json", "--no-isolation", stdin=make_pdf("Piped in", pages=2))
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["kind"] == "pdf" and [p["page"] for p in out["pages"]] == [1, 2]
    assert "Piped in" in out["pages"][0]["text"]


def test_pack_reads_an_archive_from_standard_input():
    r = _cli("pack", "-", stdin=make_zip())
    assert r.returncode == 0, r.stderr
    assert b"src/app.py" in r.stdout and r.stdout.count(b"print('hi')") == 50  # the archive's file, packed


def test_file_and_questions_cannot_both_be_standard_input():
    r = _cli("ask", "-", "--questions-file", "-", stdin=b"Why?\n")
    assert r.returncode == 2 and b"only one of FILE and --questions-file" in r.stderr
