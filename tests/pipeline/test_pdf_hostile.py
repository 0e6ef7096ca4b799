"""Hostile and broken PDFs: encrypted, not a PDF, truncated, text-less, over the caps, bombs (isolated)."""

import re

import pytest

from pipeline.errors import (
    CorruptPdf,
    EncryptedPdf,
    ExtractionResourceLimit,
    ExtractionTimeout,
    NoTextLayer,
    NotFound,
    PdfTooLarge,
)
from pipeline.pdf import IsolationLimits, PdfOptions, extract_pdf, extract_pdf_isolated
from tests.pipeline import pdf_factory as factory

GIB = 2**30


def test_encrypted_needs_a_password(tmp_path):
    path = factory.encrypted_pdf(tmp_path / "secret.pdf", user_pw="s3cret")
    with pytest.raises(EncryptedPdf, match="a password is needed"):
        extract_pdf(path)
    with pytest.raises(EncryptedPdf, match="password given does not open it"):
        extract_pdf(path, password="wrong")
    doc = extract_pdf(path, password="s3cret")
    assert "Confidential text behind a password." in doc.text
    assert doc.metadata["encrypted"] is True


def test_encrypted_error_crosses_the_process_boundary_typed(tmp_path):
    path = factory.encrypted_pdf(tmp_path / "secret.pdf")
    with pytest.raises(EncryptedPdf, match="a password is needed"):
        extract_pdf_isolated(path)


NOT_PDFS = [b"", b"hello, this is plain text\n", b"PK\x03\x04zipzipzip", b"%PDF-1.7\n" + b"\x00" * 64]


@pytest.mark.parametrize("content", NOT_PDFS)
def test_not_a_pdf_is_corrupt(tmp_path, content):
    path = tmp_path / "x.pdf"
    path.write_bytes(content)
    with pytest.raises(CorruptPdf, match="not a PDF|cannot be opened|no readable pages"):
        extract_pdf(path)


def test_truncated_file_keeps_readable_pages_and_marks_lost_ones_failed(tmp_path):
    """PyMuPDF repairs truncated files; pages whose content was cut off must be 'failed', not 'empty'."""
    data = factory.headings_pdf(tmp_path / "h.pdf").read_bytes()
    doc = extract_pdf(data[: int(len(data) * 0.3)])
    assert doc.metadata["repaired"] is True
    statuses = [s.status for s in doc.sections]
    assert statuses[0] == "text" and "failed" in statuses and "empty" not in statuses
    with pytest.raises(CorruptPdf):
        extract_pdf(data[:200])


def test_broken_xref_is_repaired_and_says_so(tmp_path):
    data = factory.headings_pdf(tmp_path / "h.pdf").read_bytes()
    broken = re.sub(rb"startxref\s+\d+", b"startxref\n999999", data)
    doc = extract_pdf(broken)
    assert doc.metadata["repaired"] is True
    assert [s.status for s in doc.sections] == ["text"] * 3
    assert doc.text == extract_pdf(data).text


def test_no_text_in_any_page_is_an_error_not_an_empty_document(tmp_path):
    path = factory.scanned_pdf(tmp_path / "scan.pdf", pages=2)
    with pytest.raises(NoTextLayer, match=r"no text in any of the 2 pages \(2 scanned\)") as err:
        extract_pdf(path)
    assert "not OCRed: OCR is off" in str(err.value)
    one = factory.scanned_pdf(tmp_path / "one.pdf", pages=1)
    with pytest.raises(NoTextLayer, match=r"no text in its one page \(1 scanned\)"):
        extract_pdf(one)


def test_page_and_text_caps(tmp_path):
    path = factory.text_pdf(tmp_path / "t.pdf", pages=3)
    with pytest.raises(PdfTooLarge, match="3 pages; the limit is 2"):
        extract_pdf(path, options=PdfOptions(max_pages=2))
    with pytest.raises(PdfTooLarge, match="cap at page 2"):
        extract_pdf(path, options=PdfOptions(max_chars=300))


def test_text_bomb_hits_the_memory_limit_and_names_the_page(tmp_path):
    """A 40 KB FlateDecode stream that draws 20M glyphs: the child's RLIMIT_AS stops it at page 2."""
    path = factory.bomb_pdf(tmp_path / "bomb.pdf", num_chars=20_000_000)
    assert path.stat().st_size < 100_000
    with pytest.raises(ExtractionResourceLimit, match="at page 2") as err:
        extract_pdf_isolated(path, limits=IsolationLimits(timeout_s=60, memory_bytes=GIB))
    assert err.value.page == 2


def test_slow_page_hits_the_page_timeout_and_names_the_page(tmp_path):
    path = factory.bomb_pdf(tmp_path / "bomb.pdf", num_chars=20_000_000)
    with pytest.raises(ExtractionTimeout, match="at page 2") as err:
        extract_pdf_isolated(path, limits=IsolationLimits(timeout_s=60, page_timeout_s=1.0, memory_bytes=4 * GIB))
    assert err.value.page == 2


def test_isolated_extraction_equals_in_process(tmp_path):
    path = factory.table_pdf(tmp_path / "t.pdf")
    assert extract_pdf_isolated(path) == extract_pdf(path)


def test_a_page_the_pdf_does_not_have_is_not_found_with_its_count(tmp_path):
    from pipeline.pdf.render import render_page

    one = factory.text_pdf(tmp_path / "one.pdf", pages=1)
    with pytest.raises(NotFound, match=r"the document has 1 page; there is no page 2"):
        render_page(str(one), 2)
    three = factory.text_pdf(tmp_path / "three.pdf", pages=3)
    with pytest.raises(NotFound, match=r"the document has 3 pages; there is no page 4"):
        render_page(str(three), 4)
    assert render_page(str(three), 3)["png"].startswith(b"\x89PNG")
