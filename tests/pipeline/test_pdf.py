"""PDF extraction against golden files (text and per-page status), plus the properties the goldens rely on."""

import json
import os
import re
from pathlib import Path

import pytest

from pipeline.errors import NoTextLayer
from pipeline.pdf import PdfOptions, extract_pdf
from pipeline.pdf.page import ocr_data
from tests.pipeline import pdf_factory as factory

GOLDEN = Path(__file__).parent / "golden" / "pdf"
REGEN = os.environ.get("WHOLEDOC_REGEN_GOLDEN") == "1"

SOURCES = {
    "headings_toc": lambda p: factory.headings_pdf(p, with_toc=True),
    "headings_fontsize": lambda p: factory.headings_pdf(p, with_toc=False),
    "two_column": factory.two_column_pdf,
    "table": factory.table_pdf,
    "mixed": factory.mixed_pdf,
    "encrypted": lambda p: factory.encrypted_pdf(p, user_pw="s3cret"),
}
PASSWORDS = {"encrypted": "s3cret"}


def summary(doc) -> dict:
    """What the JSON golden holds: metadata and per page status, title and the cause part of the reason."""
    pages = [{"page": int(s.anchor), "status": s.status, "title": s.title,
              "reason": s.reason.split(";")[0] if s.reason else None} for s in doc.sections]
    return {"metadata": doc.metadata, "pages": pages}


@pytest.fixture(scope="module")
def extracted(tmp_path_factory):
    root = tmp_path_factory.mktemp("pdfs")
    return {name: extract_pdf(make(root / f"{name}.pdf"), password=PASSWORDS.get(name))
            for name, make in SOURCES.items()}


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_extraction_matches_golden(extracted, name):
    doc = extracted[name]
    md, js = GOLDEN / f"{name}.md", GOLDEN / f"{name}.json"
    if REGEN:
        md.write_text(doc.text, encoding="utf-8")
        js.write_text(json.dumps(summary(doc), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    assert md.exists(), f"missing golden {md}; run with WHOLEDOC_REGEN_GOLDEN=1 once and review it"
    assert doc.text == md.read_text(encoding="utf-8")
    assert summary(doc) == json.loads(js.read_text(encoding="utf-8"))


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_every_page_opens_with_its_anchor_and_appears_verbatim(extracted, name):
    doc = extracted[name]
    offset = 0
    for n, section in enumerate(doc.sections, start=1):
        assert section.anchor == str(n)
        assert section.text.startswith(f"[page {n}]\n")
        found = doc.text.find(section.text, offset)
        assert found == offset, f"page {n} is not where the concatenation puts it"
        offset += len(section.text) + 1
    assert re.findall(r"^\[page (\d+)\]$", doc.text, flags=re.M) == [str(i) for i in range(1, len(doc.sections) + 1)]


def test_headings_from_the_toc_and_from_font_sizes(extracted):
    for name in ("headings_toc", "headings_fontsize"):
        text = extracted[name].text
        assert "\n# Chapter 2\n" in text and "\n## Section 2.1 Details\n" in text, name
    assert extracted["headings_toc"].metadata["headings"] == "toc"
    assert extracted["headings_fontsize"].metadata["headings"] == "font-size"
    assert [s.title for s in extracted["headings_toc"].sections] == ["Chapter 1", "Chapter 2", "Chapter 3"]


def test_page_titles_are_outline_or_heading_lines_never_code(tmp_path):
    """Regression (R-intro.pdf pp. 104–105): a page without an outline entry whose text began with a "#!" line of
    code was titled with that code, embedded newline included, instead of the outline's "Scripting with R"."""
    doc = extract_pdf(factory.script_pdf(tmp_path / "script.pdf"))
    assert [s.title for s in doc.sections] == ["Scripting with R", "Scripting with R"]
    assert "#! /path/to/Rscript" in doc.sections[1].text
    sized = extract_pdf(factory.headings_pdf(tmp_path / "sizes.pdf", with_toc=False))
    assert all(s.title and "\n" not in s.title for s in sized.sections)
    assert [s.title for s in sized.sections] == ["Chapter 1", "Chapter 2", "Chapter 3"]


def test_two_columns_read_left_then_right_even_when_written_right_first(extracted):
    text = extracted["two_column"].text
    order = ["A Study in Two Columns", "LEFT column paragraph one.", "LEFT column paragraph one-b",
             "RIGHT column paragraph two.", "RIGHT column paragraph three", "A footer paragraph"]
    positions = [text.index(s) for s in order]
    assert positions == sorted(positions)


def test_ruled_table_becomes_markdown_with_exact_cells(extracted):
    doc = extracted["table"]
    assert doc.metadata["num_tables"] == 1
    rows = [line for line in doc.text.splitlines() if line.startswith("|")]
    assert rows == [
        "| Model | Score | Memory (GB) | Note |",
        "| --- | --- | --- | --- |",
        "| model-0-1 | 30.9 | 12.5 | baseline |",
        "| model-1-2 | 41.25 | 24 | a \\| pipe |",
        "| model-2-3 | 7.0 | 3.75 |  |",
    ]
    assert "30.9" not in doc.text.replace("| 30.9 |", ""), "table text must not also appear as loose lines"


def test_pages_without_ruling_lines_get_no_table(extracted):
    for name in ("headings_toc", "two_column", "mixed"):
        assert extracted[name].metadata["num_tables"] == 0
        assert "| --- |" not in extracted[name].text


def test_page_statuses_and_reasons(extracted):
    doc = extracted["mixed"]
    assert [s.status for s in doc.sections] == ["text", "scanned", "empty", "garbled", "text"]
    scanned = doc.sections[1].reason
    assert scanned.startswith("no text layer: the page is an image")
    assert "not OCRed: OCR is off (the ocr option)" in scanned
    assert ("tesseract is not installed" in scanned) == (ocr_data("eng")[1] is not None)
    assert "unmapped glyphs" in doc.sections[3].reason
    assert "\ufffd" not in doc.text, "a garbled page's text is left out"
    assert "[no text: scanned page without a text layer]" in doc.sections[1].text


def test_metadata(extracted):
    m = extracted["mixed"].metadata
    assert (m["title"], m["author"], m["page_count"]) == ("Mixed Pages", "Test Author", 5)
    assert m["pages_by_status"] == {"empty": 1, "garbled": 1, "scanned": 1, "text": 2}


def test_a_scan_with_a_tiny_stamp_is_still_scanned(tmp_path):
    """A scanner's page-number stamp over a full-page image must not make the page count as text."""
    doc = extract_pdf(factory.stamped_scan_pdf(tmp_path / "s.pdf"))
    assert [s.status for s in doc.sections] == ["text", "scanned"]
    assert doc.sections[1].reason.startswith("almost no text layer (4 characters): the page is an image")
    assert "p. 2" in doc.sections[1].text


def test_toc_titles_match_numbered_headings_and_missing_ones_open_the_page(tmp_path):
    text = extract_pdf(factory.numbered_toc_pdf(tmp_path / "n.pdf")).text
    assert text.startswith("[page 1]\n\n## Missing Section\n\n# 1 Introduction\n\nOpening words.\n\n## 2.1 Results\n")


def test_ocr_reads_a_scanned_page_when_enabled_and_tessdata_is_there(tmp_path):
    """OCR is optional: it needs Tesseract's trained data (TESSDATA_PREFIX or an installed tesseract)."""
    if ocr_data("eng")[1] is not None:
        pytest.skip("no Tesseract trained data here (set TESSDATA_PREFIX to a folder with eng.traineddata)")
    path = factory.ocr_scan_pdf(tmp_path / "ocr.pdf", "Scanned words for OCR")
    doc = extract_pdf(path, options=PdfOptions(ocr=True))
    assert doc.sections[0].status == "text"
    assert doc.sections[0].reason == "text recognized by OCR (tesseract)"
    assert "Scanned words for OCR" in doc.text
    with pytest.raises(NoTextLayer):
        extract_pdf(path)


def test_running_headers_and_page_numbers_are_dropped(tmp_path):
    """Printed page numbers ("Page 3 of 5") compete with the [page N] anchors the model must cite."""
    doc = extract_pdf(factory.running_pdf(tmp_path / "r.pdf", pages=5))
    assert doc.metadata["running_lines_removed"] == 10
    assert "Confidential" not in doc.text and "of 5" not in doc.text
    assert all(f"Body of page {n}." in doc.sections[n - 1].text for n in range(1, 6))
    short = extract_pdf(factory.running_pdf(tmp_path / "s.pdf", pages=3))
    assert short.metadata["running_lines_removed"] == 0, "too few pages to call a line 'running'"
    assert "Page 3 of 3" in short.text
