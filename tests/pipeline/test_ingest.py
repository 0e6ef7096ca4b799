"""ingest_path sniffs by content (PDF, archive, directory), and `wholedoc ingest` reports what was extracted."""

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from pipeline.document import Kind
from pipeline.errors import EncryptedPdf, IngestError, UnsupportedFormat
from pipeline.ingest import ingest_path
from tests.pipeline import pdf_factory as factory

ROOT = Path(__file__).resolve().parents[2]


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "api.cli", "ingest", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)


def test_pdf_is_sniffed_by_content_not_name(tmp_path):
    path = factory.table_pdf(tmp_path / "report.pdf").rename(tmp_path / "report.txt")
    doc = ingest_path(path)
    assert doc.kind == Kind.PDF
    assert doc.text.startswith("[page 1]\n")
    assert doc == ingest_path(path, isolate=False)


def test_password_is_passed_through(tmp_path):
    path = factory.encrypted_pdf(tmp_path / "s.pdf", user_pw="pw")
    with pytest.raises(EncryptedPdf):
        ingest_path(path)
    assert "Confidential" in ingest_path(path, password="pw").text


def test_directory_and_zip_become_codebases(tmp_path):
    src = tmp_path / "proj"
    src.mkdir()
    (src / "app.py").write_text("print('hi')\n")
    assert ingest_path(src).kind == Kind.CODEBASE
    archive = tmp_path / "proj.bin"  # no telling extension: the zip is recognized by content
    with zipfile.ZipFile(archive, "w") as z:
        z.write(src / "app.py", "app.py")
    doc = ingest_path(archive)
    assert doc.kind == Kind.CODEBASE
    assert "print('hi')" in doc.text


def test_unknown_content_and_missing_paths_are_clear_errors(tmp_path):
    odd = tmp_path / "data.pdf"
    odd.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 32)
    with pytest.raises(UnsupportedFormat, match="neither a PDF nor a zip/tar archive"):
        ingest_path(odd)
    with pytest.raises(IngestError, match="does not exist"):
        ingest_path(tmp_path / "nope.pdf")


def test_cli_json_lists_pages_with_status_and_anchored_text(tmp_path):
    path = factory.mixed_pdf(tmp_path / "mixed.pdf")
    run = cli(str(path), "--json")
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)
    assert out["kind"] == "pdf" and out["metadata"]["page_count"] == 5
    assert out["tokens"] > 0
    assert [(p["page"], p["status"]) for p in out["pages"]] == [
        (1, "text"), (2, "scanned"), (3, "empty"), (4, "garbled"), (5, "text")]
    assert all(p["text"].startswith(f"[page {p['page']}]\n") for p in out["pages"])
    assert "Page one has a text layer." in out["pages"][0]["text"]
    assert "no text layer" in out["pages"][1]["reason"]


def test_cli_output_file_holds_the_text_and_json_names_it(tmp_path):
    path = factory.headings_pdf(tmp_path / "h.pdf")
    target = tmp_path / "out.txt"
    run = cli(str(path), "--json", "-o", str(target))
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)
    assert out["output"] == str(target)
    assert all("text" not in p for p in out["pages"])
    text = target.read_text(encoding="utf-8")
    assert text.startswith("[page 1]\n\n# Chapter 1\n") and "[page 3]" in text
    assert out["chars"] == len(text)


@pytest.mark.slow
def test_cli_human_summary_and_errors(tmp_path):
    path = factory.encrypted_pdf(tmp_path / "s.pdf", user_pw="pw")
    run = cli(str(path))
    assert run.returncode == 2
    assert "EncryptedPdf" in run.stderr and "password is needed" in run.stderr
    run = cli(str(path), "--password", "pw")
    assert run.returncode == 0, run.stderr
    assert "pdf, 1 page, " in run.stdout and "page 1: text" in run.stdout


def test_cli_json_lists_files_of_a_directory(tmp_path):
    src = tmp_path / "proj"
    (src / "pkg").mkdir(parents=True)
    (src / "pkg" / "mod.py").write_text("x = 1\n")
    (src / "README.md").write_text("# demo\n")
    run = cli(str(src), "--json")
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)
    assert out["kind"] == "codebase"
    assert sorted(f["file"] for f in out["files"]) == ["README.md", "pkg/mod.py"]
    assert all(f["status"] == "text" and f["file"] in f["text"] for f in out["files"])
