"""PDF extraction speed: ours vs `pymupdf4llm.to_markdown` vs bare `page.get_text()`, on the same generated PDF.

`python -m pipeline.bench_pdf [--quick]` prints a table, then one JSON line. The PDF is a report with an H1/H2
heading and an outline entry per page, paragraphs, a ruled table on every 5th page and two columns on every 4th.
pymupdf4llm with its layout model on (~1 page/s) is timed on the first 20 pages and scaled to the whole PDF.
"""

from __future__ import annotations

import argparse
import json
import re
import tempfile
import time
from pathlib import Path

import pymupdf

from pipeline.pdf import extract_pdf, extract_pdf_isolated

_PARA = ("Whole documents are read by the model in one pass, so every page keeps its anchor and every table keeps "
         "its rows. The extraction must be fast, faithful and honest about what it could not read. ")


def make_report(path: Path, pages: int) -> Path:
    """The benchmark PDF (deterministic)."""
    doc = pymupdf.open()
    toc = []
    for n in range(1, pages + 1):
        page = doc.new_page(width=595, height=842)
        level = 1 if n % 10 == 1 else 2
        title = f"{'Part' if level == 1 else 'Section'} {n} overview"
        toc.append([level, title, n])
        page.insert_text((72, 80), title, fontsize=18 if level == 1 else 14, fontname="hebo")
        if n % 4 == 0:
            for x0, x1 in ((72, 290), (305, 523)):
                page.insert_textbox(pymupdf.Rect(x0, 100, x1, 760), _PARA * 7, fontsize=10, fontname="helv")
            continue
        y = 100
        for _ in range(3):
            rect = pymupdf.Rect(72, y, 523, y + 200)
            y += 200 - page.insert_textbox(rect, f"Page {n}: " + _PARA * 2, fontsize=11, fontname="helv") + 14
        if n % 5 == 0:
            _table(page, 72, y + 10, [[f"r{r}c{c} {n}.{r}" for c in range(4)] for r in range(7)])
    doc.set_toc(toc)
    doc.save(str(path), garbage=3, deflate=True, no_new_id=True)
    doc.close()
    return path


def _table(page, x0: float, y0: float, rows: list[list[str]], col_w: float = 110, row_h: float = 20) -> None:
    for r in range(len(rows) + 1):
        page.draw_line((x0, y0 + r * row_h), (x0 + len(rows[0]) * col_w, y0 + r * row_h), width=0.8)
    for c in range(len(rows[0]) + 1):
        page.draw_line((x0 + c * col_w, y0), (x0 + c * col_w, y0 + len(rows) * row_h), width=0.8)
    for r, row in enumerate(rows):
        for c, cell in enumerate(row):
            page.insert_text((x0 + c * col_w + 4, y0 + r * row_h + 14), cell, fontsize=9, fontname="helv")


def _timed(fn, repeat: int = 1) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def _bare_get_text(path: Path) -> str:
    with pymupdf.open(str(path)) as doc:
        return "".join(page.get_text() for page in doc)


def _pymupdf4llm(path: Path, layout: bool) -> str:
    import pymupdf4llm

    pymupdf4llm.use_layout(layout)
    try:
        return pymupdf4llm.to_markdown(str(path), show_progress=False)
    finally:
        pymupdf4llm.use_layout(False)
        pymupdf.use_layout(False)


def run(quick: bool) -> tuple[list[dict], dict]:
    """Rows of the table and the fields of the JSON line (pages/s of each method, ratios, quality checks)."""
    pages = 40 if quick else 200
    with tempfile.TemporaryDirectory() as tmp:
        path = make_report(Path(tmp) / "report.pdf", pages)
        _timed(lambda: extract_pdf(path))  # warm-up (imports, font caches)
        t_ours, doc = _timed(lambda: extract_pdf(path), repeat=3)
        t_iso, _ = _timed(lambda: extract_pdf_isolated(path))
        t_bare, _ = _timed(lambda: _bare_get_text(path), repeat=3)
        t_4llm, md = _timed(lambda: _pymupdf4llm(path, layout=False))
        results = [("ours (in process)", t_ours), ("ours (isolated child)", t_iso), ("page.get_text()", t_bare),
                   ("pymupdf4llm layout off", t_4llm)]
        if not quick:  # ~1 page/s: timed on the first 20 pages only
            sub = Path(tmp) / "first20.pdf"
            with pymupdf.open(str(path)) as full, pymupdf.open() as part:
                part.insert_pdf(full, to_page=19)
                part.save(str(sub))
            t_4llm_on, _ = _timed(lambda: _pymupdf4llm(sub, layout=True))
            results.append(("pymupdf4llm layout on", t_4llm_on * pages / 20))
    anchors = re.findall(r"^\[page (\d+)\]$", doc.text, flags=re.M)
    headings = re.findall(r"^#{1,2} (?:Part|Section) \d+ overview$", doc.text, flags=re.M)
    tables = doc.metadata["num_tables"]
    rows = [{"method": name, "pages": pages, "seconds": round(t, 3), "pages_per_s": round(pages / t, 1),
             "ours_speedup": round(t / t_ours, 2)} for name, t in results]
    fields = {
        "bench": "pdf", "pages": pages,
        "ours_pages_per_s": round(pages / t_ours, 1),
        "ours_isolated_pages_per_s": round(pages / t_iso, 1),
        "get_text_pages_per_s": round(pages / t_bare, 1),
        "pymupdf4llm_pages_per_s": round(pages / t_4llm, 1),
        **({"pymupdf4llm_layout_pages_per_s": round(pages / results[4][1], 2)} if len(results) > 4 else {}),
        "speedup_vs_pymupdf4llm": round(t_4llm / t_ours, 1),
        "fraction_of_get_text": round(t_bare / t_ours, 3),
        "anchors_ok": anchors == [str(i) for i in range(1, pages + 1)],
        "headings_ok": len(headings) == pages,
        "tables_found": tables, "tables_expected": sum(1 for n in range(1, pages + 1) if n % 5 == 0 and n % 4),
        "pymupdf4llm_headings": len(re.findall(r"^#{1,6} .*overview", md, flags=re.M)),
    }
    return rows, fields


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="40 pages, pymupdf4llm with layout off only")
    rows, fields = run(parser.parse_args().quick)
    print(f"{'method':<26}{'pages':>7}{'seconds':>10}{'pages/s':>10}{'ours ×':>9}")
    for r in rows:
        print(f"{r['method']:<26}{r['pages']:>7}{r['seconds']:>10.3f}{r['pages_per_s']:>10.1f}{r['ours_speedup']:>9.2f}")
    print(json.dumps(fields))


if __name__ == "__main__":
    main()
