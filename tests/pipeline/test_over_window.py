"""The window policy's pieces without services (docs/over-window.md): which window a job plans for, the refusal's
message and counts, the API's check on a token count alone, and questions packed from the most relevant whole
pages that fit."""

import pytest

from pipeline.document import ExtractedDocument, Kind, Section
from pipeline.errors import OverWindow, SectionTooLong
from pipeline.pdf import extract_pdf
from pipeline.prompts import Budget, prompt_tokens
from pipeline.prompts.budget import V4_WINDOW
from pipeline.prompts.sections import rank, select_for_question, spans
from pipeline.prompts.window import output_tokens, over_window, refuse_if_over, window_tokens
from tests.helpers.long_pdf import long_pdf, topic_pages


@pytest.fixture(scope="module")
def doc() -> ExtractedDocument:
    return extract_pdf(long_pdf(40))


def test_the_window_is_the_endpoints_then_the_configured_then_v4s():
    assert window_tokens(4096, 100_000) == 4096
    assert window_tokens(None, 100_000) == 100_000
    assert window_tokens(None, None) == V4_WINDOW == 1_048_576


def test_the_refusal_gives_both_counts_with_separators_and_the_way_out():
    exc = over_window(1_134_704, 1_135_516, 1_048_576)
    assert str(exc) == ("the document is 1,134,704 tokens; with the answer it needs 1,135,516, the window is "
                        "1,048,576: summarize it in sections with `--over-window sections` (API: "
                        '`"over_window": "sections"`), or ask about it with the same option')
    assert (exc.document_tokens, exc.needed_tokens, exc.window_tokens) == (1_134_704, 1_135_516, 1_048_576)


def test_the_token_count_alone_refuses_only_what_cannot_fit():
    refuse_if_over(3_584, 512, 4096, kind="pdf", title=None, style="brief")  # exactly full: the job decides
    refuse_if_over(None, 512, 4096, kind="pdf", title=None, style="brief")  # not counted yet: the job decides
    with pytest.raises(OverWindow) as caught:
        refuse_if_over(3_585, 512, 4096, kind="pdf", title=None, style="brief")
    framing = caught.value.needed_tokens - 3_585 - 512
    assert 200 < framing < 400  # system text, tags and task of a brief summary
    assert output_tokens(512, thinking=True) == 512 + 8192


def test_questions_take_the_most_relevant_whole_pages_that_fit_in_document_order(doc):
    budget = Budget(4096)
    picked = select_for_question(doc, "What did the glacier team measure?", budget, max_tokens=64)
    included = [int(a) for a in picked.included]
    assert set(topic_pages("glacier", 40)) <= set(included)
    assert included == sorted(included) and picked.left_out
    assert sorted(included + [int(a) for a in picked.left_out]) == list(range(1, 41))
    assert prompt_tokens(picked.prompt) + 64 <= 4096
    for anchor in picked.included:  # whole pages: each included page's text is in the prompt as it is
        page = doc.sections[int(anchor) - 1]
        assert page.text.strip() in picked.prompt.document
    cov = picked.coverage()
    assert cov["mode"] == "selected" and cov["included_spans"].startswith("pages ")


def test_rank_puts_matching_pages_first_and_keeps_document_order_on_ties(doc):
    order = rank(doc, "orchard")
    top = order[:len(topic_pages("orchard", 40))]
    assert sorted(i + 1 for i in top) == topic_pages("orchard", 40)
    rest = order[len(top):]
    assert rest == sorted(rest)  # no word matches: document order


def test_a_window_too_small_for_any_page_is_a_section_too_long(doc):
    with pytest.raises(SectionTooLong, match="not even the most relevant page"):
        select_for_question(doc, "glacier", Budget(400), max_tokens=64)


def test_spans_name_runs_of_pages_and_files():
    assert spans(Kind.PDF, ["1", "2", "3", "7", "9", "10"]) == "pages 1-3, 7, 9-10"
    assert spans(Kind.PDF, ["4"]) == "page 4"
    assert spans(Kind.CODEBASE, ["a.py", "b.py"]) == "files a.py, b.py"
    assert spans(Kind.PDF, []) == ""


def test_a_codebase_question_keeps_whole_files():
    files = tuple(Section(i, f"src/m{i}.py", "text", f"=== src/m{i}.py ===\n" + f"def f{i}(): return {i}\n" * 80)
                  for i in range(6))
    code = ExtractedDocument(Kind.CODEBASE, "".join(s.text for s in files), files)
    picked = select_for_question(code, "what does f3 return", Budget(2400), max_tokens=32)
    assert "src/m3.py" in picked.included and picked.left_out
    assert all(files[int(a[5])].text in picked.prompt.document for a in picked.included)
