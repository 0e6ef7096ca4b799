"""Citations: parsing every form, and checking quotes against pages and files with normalization."""

from pathlib import Path

import pymupdf
import pytest

from pipeline.citations import canonical, flagged, parse_citations, verify_citations
from pipeline.codebase.pack import pack_codebase
from pipeline.document import ExtractedDocument, Kind, Section
from pipeline.pdf.extract import extract_pdf


def pdf(*pages: str) -> ExtractedDocument:
    secs = tuple(Section(i, str(i + 1), "text", f"[page {i + 1}]\n{t}\n") for i, t in enumerate(pages))
    return ExtractedDocument(Kind.PDF, "\n".join(s.text for s in secs), secs, {})


def codebase(files: dict[str, str], root: Path, numbered: bool = False) -> ExtractedDocument:
    """Packed by the real packer, so the test follows its header and line-number format."""
    for path, text in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text)
    return pack_codebase(root, line_numbers=numbered)


REPORT = pdf(
    "Revenue grew by 4% in 2025, driven by the “efficient” new plant.",
    "The board approved the ﬁnal budget. Operating costs were reduced sub-\nstantially through automation.",
    "Risks remain — notably supply chain delays.",
)


def test_parse_all_forms_with_spans():
    answer = ('Growth [p. 1: "grew by 4%"], budget [pp. 2-3: "final budget"], file [src/app.py:12: "def main()"], '
              'range [lib/x.py:3-5: "y = 2"], unquoted [p. 3], digest [doc 2, p. 4: "z"] and [doc 1, a/b.py:7: "q"].')
    cs = parse_citations(answer)
    assert [(c.doc, c.anchor, c.page_end, c.line, c.line_end, c.quote) for c in cs] == [
        (None, "1", None, None, None, "grew by 4%"),
        (None, "2", 3, None, None, "final budget"),
        (None, "src/app.py", None, 12, None, "def main()"),
        (None, "lib/x.py", None, 3, 5, "y = 2"),
        (None, "3", None, None, None, None),
        (2, "4", None, None, None, "z"),
        (1, "a/b.py", None, 7, None, "q"),
    ]
    for c in cs:
        assert answer[c.start:c.end] == c.raw and c.raw.startswith("[") and c.raw.endswith("]")


def test_curly_quotes_and_quotes_inside_code():
    cs = parse_citations('[p. 2: “the final budget”] and [src/a.py:1: "print("hi")"] then [x]')
    assert [c.quote for c in cs] == ["the final budget", 'print("hi")']


def test_not_citations():
    assert parse_citations("a list [1, 2], a link [docs](http://x), arr[i:3], [page] and [p. x]") == []


@pytest.mark.parametrize("quote", [
    "Revenue grew by 4%",                    # exact
    "revenue  GREW by 4%",                   # case and whitespace
    'driven by the "efficient" new plant',   # curly vs straight quotes
    "grew by 4% ... new plant",              # an elided quote
])
def test_verified_on_the_cited_page(quote):
    [c] = verify_citations(f'Fact [p. 1: "{quote}"].', REPORT)
    assert (c.status, c.reason) == ("verified", None)


def test_ligatures_hyphenation_and_dashes_normalize():
    cs = verify_citations('[p. 2: "the final budget"] [p. 2: "were reduced substantially"] '
                          '[p. 3: "Risks remain - notably supply"]', REPORT)
    assert [c.status for c in cs] == ["verified"] * 3


def test_quote_on_another_page_is_flagged_with_where_it_is():
    [c] = verify_citations('[p. 1: "approved the final budget"]', REPORT)
    assert c.status == "unverified" and c.found_in == ("2",) and "it occurs on page 2" in c.reason


def test_invented_quote_and_unquoted_citation_are_unverified():
    cs = verify_citations('[p. 1: "profits tripled"] [p. 1]', REPORT)
    assert [(c.status, c.found_in) for c in cs] == [("unverified", ()), ("unverified", ())]
    assert cs[1].reason == "no quote to check"
    assert flagged(cs) == cs


def test_missing_page_and_bad_range_are_invalid():
    cs = verify_citations('[p. 9: "x"] [pp. 3-1: "x"] [pp. 1-40: "x"] [src/a.py:1: "x"]', REPORT)
    assert [c.status for c in cs] == ["invalid"] * 4
    assert "no page 9 (it has 3 pages)" in cs[0].reason
    assert "a file citation on a pdf document" in cs[3].reason


def test_quote_across_a_page_break_with_a_range():
    [c] = verify_citations('[pp. 2-3: "through automation. Risks remain"]', REPORT)
    assert c.status == "verified"
    [c] = verify_citations('[p. 2: "through automation. Risks remain"]', REPORT)
    assert c.status == "unverified"


@pytest.mark.parametrize("numbered", [False, True])
def test_codebase_quotes_and_found_line(numbered, tmp_path):
    doc = codebase({"src/app.py": "import os\n\ndef main():\n    return os.getcwd()\n", "src/b.py": "x = 1\n"},
                   tmp_path, numbered=numbered)
    cs = verify_citations('[src/app.py:3: "def main():\n    return os.getcwd()"] [src/app.py:1: "x = 1"] '
                          '[src/nope.py:1: "x"]', doc)
    assert [c.status for c in cs] == ["verified", "unverified", "invalid"]
    assert cs[0].found_line == 3 and cs[1].found_in == ("src/b.py",)
    assert cs[2].reason == "the document has no file src/nope.py"


def test_digest_citations_name_their_document(tmp_path):
    docs = [REPORT, codebase({"a.py": "x = 1\n"}, tmp_path)]
    cs = verify_citations('[doc 1, p. 2: "final budget"] [doc 2, a.py:1: "x = 1"] [doc 3, p. 1: "x"] [p. 1: "x"]',
                          docs)
    assert [c.status for c in cs] == ["verified", "verified", "invalid", "invalid"]
    assert "no document 3" in cs[2].reason and "must name its document" in cs[3].reason


def test_canonical_form():
    assert canonical("Eﬃcient  “Quote”\u200b — well-\nknown") == canonical('efficient "quote" -wellknown')


def test_against_a_real_extracted_pdf():
    pdf_doc = pymupdf.open()
    for text in ("The committee met on Tuesday.\nIt approved the water plan.", "Costs rose to 12 million euros."):
        pdf_doc.new_page().insert_text((72, 72), text, fontsize=11)
    doc = extract_pdf(pdf_doc.tobytes())
    cs = verify_citations('[p. 1: "approved the water plan"] [p. 2: "12 million euros"] [p. 1: "12 million"]', doc)
    assert [c.status for c in cs] == ["verified", "verified", "unverified"] and cs[2].found_in == ("2",)


def test_malformed_citations_are_flagged_not_skipped():
    answer = 'A [p. 1, "grew by 4%"] B [page 2 "final budget"] C [src/a.py, line 3: "x"] D [p. 1: "Revenue grew"]'
    cs = verify_citations(answer, REPORT)
    assert [(c.status, c.anchor) for c in cs] == [
        ("invalid", "1"), ("invalid", "2"), ("invalid", "src/a.py"), ("verified", "1")]
    assert all("malformed citation" in c.reason for c in cs[:3])
    assert [answer[c.start:c.end] for c in cs][:2] == ['[p. 1, "grew by 4%"]', '[page 2 "final budget"]']
