"""The lattice table reader on its own: grouping ruling segments into grids and words into cells."""

import pymupdf

from pipeline.pdf.tables import MAX_SEGMENTS, find_grids, page_tables, ruling_segments
from tests.pipeline import pdf_factory as factory


def test_two_separate_tables_on_one_page_are_two_grids():
    doc = pymupdf.open()
    page = doc.new_page()
    factory.draw_table(page, 72, 72, rows=[["a", "b"], ["1", "2"]])
    factory.draw_table(page, 72, 400, rows=[["x", "y", "z"], ["7", "8", "9"], ["4", "5", "6"]])
    tables = page_tables(page.get_cdrawings(), lambda: page.get_text("words"))
    assert [t.rows for t in tables] == [(("a", "b"), ("1", "2")), (("x", "y", "z"), ("7", "8", "9"), ("4", "5", "6"))]


def test_stroked_cell_rectangles_count_as_rules_and_single_boxes_do_not():
    doc = pymupdf.open()
    page = doc.new_page()
    for r in range(2):
        for c in range(2):
            page.draw_rect(pymupdf.Rect(72 + 100 * c, 72 + 20 * r, 172 + 100 * c, 92 + 20 * r))
    page.draw_rect(pymupdf.Rect(72, 300, 300, 400))  # a framed paragraph: one box, not a table
    hs, vs = ruling_segments(page.get_cdrawings())
    grids = find_grids(hs, vs)
    assert grids == [([72.0, 172.0, 272.0], [72.0, 92.0, 112.0])]


def test_filled_thin_rectangles_are_rules_and_too_many_segments_are_not_searched():
    hs = [(y, 0.0, 100.0) for y in (10.0, 30.0, 50.0)]
    vs = [(x, 10.0, 50.0) for x in (0.0, 50.0, 100.0)]
    assert find_grids(hs, vs) == [([0.0, 50.0, 100.0], [10.0, 30.0, 50.0])]
    many = [(float(y), 0.0, 100.0) for y in range(MAX_SEGMENTS)]
    assert find_grids(many, vs) == []
    drawings = [{"type": "f", "items": [("re", (0.0, 10.0, 100.0, 10.5), 1)]}]
    assert ruling_segments(drawings) == ([(10.25, 0.0, 100.0)], [])
