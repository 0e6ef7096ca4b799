"""Window policy: whole when it fits, DocumentTooLong with both counts, and the opt-in sectioned fallback."""

import pytest

from pipeline.document import ExtractedDocument, Kind, Section
from pipeline.errors import DocumentTooLong, SectionTooLong
from pipeline.prompts import Budget, check_fits, combine_prompt, fit, part_document, prompt_tokens, question_prompt
from pipeline.prompts.builders import PART_MAX_TOKENS, part_prompt

WORDS = "alpha beta gamma delta epsilon zeta eta theta iota kappa ".split()


def pdf(n_pages: int, words_per_page: int = 200, titles: set[int] = frozenset()) -> ExtractedDocument:
    body = lambda i: " ".join(WORDS[(i + j) % 10] for j in range(words_per_page))
    secs = tuple(
        Section(i, str(i + 1), "text", f"[page {i + 1}]\n{body(i)}\n", title=f"Ch {i + 1}" if i + 1 in titles else None)
        for i in range(n_pages)
    )
    return ExtractedDocument(Kind.PDF, "".join(s.text for s in secs), secs, {"title": "Big"})


def test_a_document_that_fits_goes_whole():
    d = pdf(5)
    plan = fit(d, Budget(window_tokens=1_048_576))
    assert plan.mode == "whole" and plan.parts == ()
    assert plan.prompt_tokens > 5 * 200 and plan.max_output_tokens == 512


def test_the_boundary_is_prompt_plus_output_cap():
    d = pdf(3)
    n = fit(d, Budget()).prompt_tokens
    assert fit(d, Budget(window_tokens=n + 512)).mode == "whole"
    with pytest.raises(DocumentTooLong) as e:
        fit(d, Budget(window_tokens=n + 511))
    assert (e.value.prompt_tokens, e.value.window_tokens, e.value.max_output_tokens) == (n, n + 511, 512)
    assert f"{n:,} tokens" in str(e.value) and f"{n + 511:,} tokens" in str(e.value)


def test_check_fits_for_questions():
    p = question_prompt(pdf(2), "Why?")
    n = prompt_tokens(p)
    assert check_fits(p, Budget(window_tokens=n + p.max_tokens)) == n
    with pytest.raises(DocumentTooLong):
        check_fits(p, Budget(window_tokens=n + p.max_tokens - 1))


def test_fallback_groups_whole_pages_that_each_fit():
    d = pdf(40)
    window = 4000
    plan = fit(d, Budget(window_tokens=window), fallback=True)
    assert plan.mode == "parts" and len(plan.parts) > 1
    pages = [s.anchor for part in plan.parts for s in part.sections]
    assert pages == [str(i) for i in range(1, 41)]  # every page once, in order, never split
    for i, part in enumerate(plan.parts):
        real = prompt_tokens(part_prompt(part_document(d, part.sections), index=i + 1, parts=len(plan.parts),
                                         span=part.span))
        assert real + PART_MAX_TOKENS <= window
        assert part.span == f"pages {part.sections[0].anchor}-{part.sections[-1].anchor}"


def test_fallback_prefers_to_break_at_headings():
    no_heads = fit(pdf(40), Budget(window_tokens=4000), fallback=True)
    first_len = len(no_heads.parts[0].sections)
    head = first_len - 1  # a chapter starting in the second half of the first group
    with_heads = fit(pdf(40, titles={head}), Budget(window_tokens=4000), fallback=True)
    assert with_heads.parts[1].sections[0].anchor == str(head)


def test_one_section_larger_than_the_window_is_named():
    secs = list(pdf(3).sections)
    secs[1] = Section(1, "2", "text", "[page 2]\n" + "word " * 5000)
    d = ExtractedDocument(Kind.PDF, "".join(s.text for s in secs), tuple(secs), {})
    with pytest.raises(SectionTooLong) as e:
        fit(d, Budget(window_tokens=3000), fallback=True)
    assert e.value.anchor == "2" and "page 2 alone" in str(e.value)


def test_codebase_parts_are_by_file():
    secs = tuple(Section(i, f"src/m{i}.py", "text", f"=== src/m{i}.py ===\n" + "x = 1\n" * 150) for i in range(12))
    d = ExtractedDocument(Kind.CODEBASE, "".join(s.text for s in secs), secs, {})
    plan = fit(d, Budget(window_tokens=3000), fallback=True)
    assert plan.mode == "parts"
    assert [s.anchor for p in plan.parts for s in p.sections] == [f"src/m{i}.py" for i in range(12)]
    assert plan.parts[0].span.startswith("files src/m0.py to ")


def test_combine_prompt_holds_part_summaries_as_data():
    p = combine_prompt(pdf(1), [("pages 1-3", "First </document> part."), ("pages 4-6", "Second.")], "executive")
    assert p.document == (
        '<document kind="pdf" title="Big">\n## Part 1: pages 1-3\n\nFirst &lt;/document> part.\n\n'
        "## Part 2: pages 4-6\n\nSecond.\n\n</document>\n\n"
    )
    assert p.task.startswith("The document above holds the summaries of all 2 consecutive parts")
    assert p.task.endswith("then one line on what to do next. Cite each bullet.") and p.max_tokens == 1024


def _files(dirs: list[str]) -> ExtractedDocument:
    secs = tuple(Section(i, f"{d}/m{i:02d}.py", "text", f"===== {d}/m{i:02d}.py =====\n" + "x = 1\n" * 150, title=d)
                 for i, d in enumerate(dirs))
    return ExtractedDocument(Kind.CODEBASE, "".join(s.text for s in secs), secs, {})


def test_codebase_parts_prefer_directory_boundaries():
    greedy = len(fit(_files(["src"] * 12), Budget(window_tokens=3000), fallback=True).parts[0].sections)
    k = greedy - 1  # a directory change inside the second half of the first group
    plan = fit(_files(["a"] * k + ["b"] * (12 - k)), Budget(window_tokens=3000), fallback=True)
    assert len(plan.parts[0].sections) == k and plan.parts[1].sections[0].anchor.startswith("b/")


def test_thinking_mode_reserves_room_for_reasoning():
    p = question_prompt(pdf(2), "Why?")
    assert (p.output_tokens(), p.output_tokens(thinking=True)) == (2048, 2048 + 8192)
    n = prompt_tokens(p)
    window = n + p.max_tokens
    assert check_fits(p, Budget(window_tokens=window)) == n
    with pytest.raises(DocumentTooLong) as e:
        check_fits(p, Budget(window_tokens=window, thinking=True))
    assert e.value.max_output_tokens == 2048 + 8192
    assert fit(pdf(2), Budget(thinking=True)).max_output_tokens == 512 + 8192
