"""`wholedoc sample` writes a PDF the pipeline reads page by page (the README's main-job input)."""

import subprocess
import sys

from pipeline.ingest import ingest_path


def test_sample_pdf_is_readable(tmp_path):
    out = tmp_path / "sample.pdf"
    r = subprocess.run([sys.executable, "-m", "api.cli", "sample", str(out)], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    doc = ingest_path(out, isolate=False)
    assert [s.anchor for s in doc.sections] == ["1", "2", "3", "4"]
    assert "41.2 million euros" in doc.sections[1].text and doc.title.startswith("Northwind")
