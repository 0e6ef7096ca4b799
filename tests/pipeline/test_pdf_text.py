"""How a block's lines become text: wrapped paragraphs, short lines, list items, TOC rows, hyphenation."""

import pymupdf

from pipeline.pdf import extract_pdf
from pipeline.pdf.extract import _join
from pipeline.pdf.page import _with_breaks


def test_wrapped_lines_join_and_broken_words_rejoin():
    """Regression: "manip-" + "ulation" came out as "manip-ulation"; compounds must keep their hyphen."""
    lines = [("This manual covers manip-", False), ("ulation of state-of-the-", False), ("art parsers.", False)]
    assert _join(lines) == "This manual covers manipulation of state-of-the-art parsers."


def test_short_lines_and_list_items_keep_their_line():
    lines = [("Fabio Fiorina", True), ("Simon Josefsson", True), ("Features are:", False),
             ("• one", False), ("• two that wraps", False), ("onto a second line.", False)]
    assert _join(lines) == "Fabio Fiorina\nSimon Josefsson\nFeatures are:\n• one\n• two that wraps onto a second line."


def test_dot_leaders_shrink_and_end_a_toc_row():
    lines = [("2.1 ASN.1 syntax. . . . . . . . . . 2", False), ("2.2 Naming . . . . . . . . . . 3", False)]
    assert _join(lines) == "2.1 ASN.1 syntax … 2\n2.2 Naming … 3"


def test_breaks_follow_rows_and_the_right_edge():
    # block from x=72 to x=500, 10 pt text: a row ending more than max(0.2*428, 80) = 85.6 pt short breaks
    lines = [("2.1", 10.0, (72, 100, 90, 110)), ("ASN.1 syntax", 10.0, (100, 100, 160, 110)),  # same row
             ("a wrapped line", 10.0, (72, 112, 495, 122)), ("a short line", 10.0, (72, 124, 300, 134)),
             ("last", 10.0, (72, 136, 100, 146))]
    assert [b for *_, b in _with_breaks(lines, right=500, width=428)] == [False, True, False, True, True]


def test_toc_number_and_title_on_one_row_stay_together(tmp_path):
    """Regression: MuPDF splits "2.1" and its title into two lines; they printed on separate lines."""
    doc = pymupdf.open()
    page = doc.new_page()
    for i, (num, title) in enumerate([("2.1", "Results"), ("2.2", "Discussion")]):
        y = 100 + 14 * i
        page.insert_text((72, y), num, fontsize=11)
        page.insert_text((110, y), f"{title} . . . . . . . . . . . . . . . . {i + 4}", fontsize=11)
    text = extract_pdf(doc.tobytes()).text
    assert "2.1 Results … 4\n2.2 Discussion … 5" in text
