"""PDFs for the tests and the benchmark, generated with PyMuPDF (deterministic: fixed text, no dates, no ids)."""

from __future__ import annotations

import zlib
from pathlib import Path

import pymupdf

A4 = pymupdf.paper_rect("a4")  # 595 × 842
BODY = 11
PARA = (
    "Whole documents are read by the model in one pass, so every page keeps its anchor and every table keeps "
    "its rows. The extraction must be fast, faithful and honest about what it could not read."
)


def _new(title: str | None = None) -> pymupdf.Document:
    doc = pymupdf.open()
    doc.set_metadata({"title": title or "", "author": "Test Author" if title else "", "producer": "", "creator": "",
                      "creationDate": "", "modDate": ""})
    return doc


def _save(doc: pymupdf.Document, path: Path, **kw) -> Path:
    doc.save(str(path), garbage=3, deflate=True, no_new_id=True, **kw)
    doc.close()
    return path


def _heading(page, y: float, text: str, size: float) -> float:
    page.insert_text((72, y), text, fontsize=size, fontname="hebo")
    return y + size + 12


def _para(page, y: float, text: str = PARA, x0: float = 72, x1: float = 523, size: float = BODY) -> float:
    rect = pymupdf.Rect(x0, y, x1, y + 200)
    left = page.insert_textbox(rect, text, fontsize=size, fontname="helv")
    return y + (200 - left) + 14


def headings_pdf(path: Path, with_toc: bool = True) -> Path:
    """Three pages with H1/H2 headings (20 pt / 15 pt bold) over 11 pt body text; a TOC when `with_toc`."""
    doc = _new("Headings Test")
    toc = []
    for n in range(1, 4):
        page = doc.new_page(width=A4.width, height=A4.height)
        y = _heading(page, 80, f"Chapter {n}", 20)
        toc.append([1, f"Chapter {n}", n])
        y = _para(page, y, f"Chapter {n} begins here. " + PARA)
        y = _heading(page, y + 6, f"Section {n}.1 Details", 15)
        toc.append([2, f"Section {n}.1 Details", n])
        _para(page, y, f"Details of chapter {n}: numbers 3.14 and 2,718 stay intact.")
    if with_toc:
        doc.set_toc(toc)
    return _save(doc, path)


def two_column_pdf(path: Path) -> Path:
    """A title across the page, then two columns whose right column is written FIRST in the content stream."""
    doc = _new("Two Columns")
    page = doc.new_page(width=A4.width, height=A4.height)
    right = "RIGHT column paragraph two. It continues the argument after the left column ends. " * 3
    left = "LEFT column paragraph one. It opens the argument and must be read before the right column. " * 3
    page.insert_textbox(pymupdf.Rect(310, 120, 523, 420), right, fontsize=BODY, fontname="helv")
    page.insert_textbox(pymupdf.Rect(310, 430, 523, 700), "RIGHT column paragraph three closes it.",
                        fontsize=BODY, fontname="helv")
    page.insert_textbox(pymupdf.Rect(72, 120, 285, 420), left, fontsize=BODY, fontname="helv")
    page.insert_textbox(pymupdf.Rect(72, 430, 285, 700), "LEFT column paragraph one-b ends the left side.",
                        fontsize=BODY, fontname="helv")
    page.insert_textbox(pymupdf.Rect(72, 60, 523, 100), "A Study in Two Columns", fontsize=18, fontname="hebo",
                        align=pymupdf.TEXT_ALIGN_CENTER)
    page.insert_textbox(pymupdf.Rect(72, 720, 523, 780), "A footer paragraph that spans both columns at the end.",
                        fontsize=BODY, fontname="helv")
    return _save(doc, path)


TABLE_ROWS = [
    ["Model", "Score", "Memory (GB)", "Note"],
    ["model-0-1", "30.9", "12.5", "baseline"],
    ["model-1-2", "41.25", "24", "a | pipe"],
    ["model-2-3", "7.0", "3.75", ""],
]


def draw_table(page, x0: float, y0: float, rows=TABLE_ROWS, col_w: float = 110, row_h: float = 20) -> float:
    """A fully ruled grid (one line per row and column boundary) with text in each cell; returns its bottom."""
    ncols, nrows = len(rows[0]), len(rows)
    for r in range(nrows + 1):
        page.draw_line((x0, y0 + r * row_h), (x0 + ncols * col_w, y0 + r * row_h), width=0.8)
    for c in range(ncols + 1):
        page.draw_line((x0 + c * col_w, y0), (x0 + c * col_w, y0 + nrows * row_h), width=0.8)
    for r, row in enumerate(rows):
        for c, cell in enumerate(row):
            if cell:
                page.insert_text((x0 + c * col_w + 4, y0 + r * row_h + 14), cell, fontsize=9, fontname="helv")
    return y0 + nrows * row_h


def table_pdf(path: Path) -> Path:
    """A paragraph, a ruled 4×4 table with decimals and a pipe, and a paragraph after it."""
    doc = _new("Tables")
    page = doc.new_page(width=A4.width, height=A4.height)
    y = _para(page, 72, "The table below compares three models.")
    y = draw_table(page, 72, y + 10)
    _para(page, y + 20, "Text after the table closes the page.")
    return _save(doc, path)


def scanned_page(page) -> None:
    """Fill a page with an image only (no text layer), like a scan."""
    pix = pymupdf.Pixmap(pymupdf.csGRAY, pymupdf.IRect(0, 0, 120, 160), False)
    pix.set_rect(pix.irect, (235,))
    pix.set_rect(pymupdf.IRect(10, 10, 110, 20), (20,))  # a "line of text" in pixels only
    page.insert_image(page.rect + (36, 36, -36, -36), stream=pix.tobytes("png"))


def mixed_pdf(path: Path) -> Path:
    """Page 1 text, page 2 a scan (image only), page 3 empty, page 4 garbled (glyphs mapped to U+FFFD), page 5 text."""
    doc = _new("Mixed Pages")
    _para(doc.new_page(width=A4.width, height=A4.height), 72, "Page one has a text layer.")
    scanned_page(doc.new_page(width=A4.width, height=A4.height))
    doc.new_page(width=A4.width, height=A4.height)
    garbled_page(doc, doc.new_page(width=A4.width, height=A4.height))
    _para(doc.new_page(width=A4.width, height=A4.height), 72, "Page five has a text layer again.")
    return _save(doc, path)


def garbled_page(doc: pymupdf.Document, page) -> None:
    """Text in an embedded font whose ToUnicode CMap maps every glyph to U+FFFD (an unmapped font)."""
    font = pymupdf.Font("cjk")
    page.insert_font(fontname="F0", fontbuffer=font.buffer)
    text = "Unreadable glyphs only here"
    page.insert_text((72, 72), text, fontname="F0", fontsize=12)
    gids = sorted({font.has_glyph(ord(ch)) for ch in text})
    entries = "\n".join(f"<{g:04x}> <FFFD>" for g in gids)
    cmap = (f"/CIDInit /ProcSet findresource begin 12 dict begin begincmap /CMapName /Unmapped def /CMapType 2 def\n"
            f"1 begincodespacerange <0000> <FFFF> endcodespacerange\n{len(gids)} beginbfchar\n{entries}\nendbfchar\n"
            "endcmap CMapName currentdict /CMap defineresource pop end end").encode()
    for xref in range(1, doc.xref_length()):
        kind, value = doc.xref_get_key(xref, "ToUnicode")
        if kind == "xref":
            doc.update_stream(int(value.split()[0]), cmap)


def scanned_pdf(path: Path, pages: int = 2) -> Path:
    """Every page an image only: no text layer anywhere."""
    doc = _new("Scanned")
    for _ in range(pages):
        scanned_page(doc.new_page(width=A4.width, height=A4.height))
    return _save(doc, path)


def encrypted_pdf(path: Path, user_pw: str = "s3cret", owner_pw: str = "owner") -> Path:
    doc = _new("Secret")
    _para(doc.new_page(width=A4.width, height=A4.height), 72, "Confidential text behind a password.")
    return _save(doc, path, encryption=pymupdf.PDF_ENCRYPT_AES_256, user_pw=user_pw, owner_pw=owner_pw)


def text_pdf(path: Path, pages: int = 3) -> Path:
    doc = _new("Plain")
    for n in range(1, pages + 1):
        _para(doc.new_page(width=A4.width, height=A4.height), 72, f"Plain page {n}. " + PARA)
    return _save(doc, path)


def bomb_pdf(path: Path, num_chars: int) -> Path:
    """Page 2 of 3 holds a FlateDecode content stream that draws `num_chars` glyphs: a few KB on disk,
    gigabytes once a reader builds its text structures (a decompression bomb aimed at text extraction)."""
    doc = _new("Bomb")
    for n in range(3):
        _para(doc.new_page(width=A4.width, height=A4.height), 72, f"Ordinary page {n + 1}.")
    page = doc[1]
    comp = zlib.compressobj(9)
    show = b"(" + b"A" * 1000 + b") Tj 0 -0.01 Td\n"  # each run a new line: no dedup of overlapping glyphs
    data = [comp.compress(b"BT /helv 1 Tf 72 500 Td\n")]
    data += [comp.compress(show) for _ in range(num_chars // 1000)]
    data += [comp.compress(b"ET\n"), comp.flush()]
    xref = doc.get_new_xref()
    doc.update_object(xref, "<< >>")
    doc.update_stream(xref, b"".join(data), compress=False)
    doc.xref_set_key(xref, "Filter", "/FlateDecode")  # after update_stream, which resets it
    contents = page.get_contents()
    doc.xref_set_key(page.xref, "Contents", "[" + " ".join(f"{x} 0 R" for x in [*contents, xref]) + "]")
    page.insert_font(fontname="helv")
    doc.save(str(path), no_new_id=True)
    doc.close()
    return path


def bench_pdf(path: Path, pages: int) -> Path:
    """A long report: per page an H1 or H2, paragraphs; every 5th page a ruled table; every 4th page 2 columns."""
    doc = _new("Benchmark Report")
    toc = []
    for n in range(1, pages + 1):
        page = doc.new_page(width=A4.width, height=A4.height)
        level = 1 if n % 10 == 1 else 2
        title = f"{'Part' if level == 1 else 'Section'} {n} overview"
        toc.append([level, title, n])
        y = _heading(page, 72, title, 18 if level == 1 else 14)
        if n % 4 == 0:
            page.insert_textbox(pymupdf.Rect(72, y, 290, y + 600), (PARA + " ") * 6, fontsize=10, fontname="helv")
            page.insert_textbox(pymupdf.Rect(305, y, 523, y + 600), (PARA + " ") * 6, fontsize=10, fontname="helv")
            continue
        for _ in range(3):
            y = _para(page, y, f"Page {n}: " + PARA + " " + PARA)
        if n % 5 == 0:
            draw_table(page, 72, y + 10, rows=[[f"r{r}c{c} {n}.{r}" for c in range(4)] for r in range(7)])
    doc.set_toc(toc)
    return _save(doc, path)


def stamped_scan_pdf(path: Path) -> Path:
    """Page 1 text; page 2 a full-page scan image plus a tiny text stamp ("p. 2") added by the scanner."""
    doc = _new("Stamped")
    _para(doc.new_page(width=A4.width, height=A4.height), 72, "A real text page comes first.")
    page = doc.new_page(width=A4.width, height=A4.height)
    scanned_page(page)
    page.insert_text((500, 820), "p. 2", fontsize=8, fontname="helv")
    return _save(doc, path)


def numbered_toc_pdf(path: Path) -> Path:
    """Headings printed with numbers ("2.1 Results") while the outline says just "Results"."""
    doc = _new("Numbered")
    page = doc.new_page(width=A4.width, height=A4.height)
    y = _heading(page, 80, "1 Introduction", 18)
    y = _para(page, y, "Opening words.")
    y = _heading(page, y, "2.1 Results", 14)
    _para(page, y, "Results words.")
    doc.set_toc([[1, "Introduction", 1], [2, "Results", 1], [2, "Missing Section", 1]])
    return _save(doc, path)


def ocr_scan_pdf(path: Path, words: str) -> Path:
    """One page that is a 150-dpi picture of `words` (rendered, then pasted as an image): text only by OCR."""
    src = pymupdf.open()
    src.new_page(width=A4.width, height=A4.height).insert_text((72, 120), words, fontsize=28, fontname="helv")
    pix = src[0].get_pixmap(dpi=150)
    doc = _new("OCR")
    doc.new_page(width=A4.width, height=A4.height).insert_image(A4, pixmap=pix)
    return _save(doc, path)


def running_pdf(path: Path, pages: int) -> Path:
    """Pages with a running header ("Acme Report — Confidential") and footer ("Page N of M") in 8 pt."""
    doc = _new("Running")
    for n in range(1, pages + 1):
        page = doc.new_page(width=A4.width, height=A4.height)
        page.insert_text((72, 40), "Acme Report - Confidential", fontsize=8, fontname="helv")
        _para(page, 100, f"Body of page {n}. " + PARA)
        page.insert_text((270, 810), f"Page {n} of {pages}", fontsize=8, fontname="helv")
    return _save(doc, path)


def script_pdf(path: Path) -> Path:
    """R-intro's shape: an outlined section, then a page without an outline entry whose text opens with a "#!"
    line of code continued on the next line (one text block)."""
    doc = _new("Scripting Test")
    page = doc.new_page(width=A4.width, height=A4.height)
    y = _heading(page, 80, "Scripting with R", 20)
    _para(page, y, "Scripts can be run from the command line. " + PARA)
    page = doc.new_page(width=A4.width, height=A4.height)
    page.insert_text((72, 80), "#! /path/to/Rscript", fontsize=BODY, fontname="cour")
    page.insert_text((72, 80 + BODY + 2), "args <- commandArgs(TRUE)", fontsize=BODY, fontname="cour")
    _para(page, 120, "The script then reads its arguments. " + PARA)
    doc.set_toc([[1, "Scripting with R", 1]])
    return _save(doc, path)
