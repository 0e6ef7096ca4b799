"""Packing whole documents into the window for a corpus question (pipeline.prompts.corpus_pack), and citations across
the packed documents."""

import pytest

from pipeline.citations import verify_citations
from pipeline.document import ExtractedDocument, Kind, Section
from pipeline.errors import PromptError
from pipeline.prompts import prompt_tokens
from pipeline.prompts.corpus_pack import (
    Candidate,
    budget_for,
    corpus_prompt,
    fit_exactly,
    nothing_fits,
    pack,
)
from pipeline.tokens import count_tokens


def pdf(*pages: str, title: str | None = None) -> ExtractedDocument:
    sections = tuple(Section(i, str(i + 1), "text", f"[page {i + 1}]\n{p}\n") for i, p in enumerate(pages))
    return ExtractedDocument(Kind.PDF, "".join(s.text for s in sections), sections, {"title": title} if title else {})


def c(doc_id: str, tokens: int, score: float = 0.0) -> Candidate:
    return Candidate(doc_id, tokens, score=score, matched_terms=("x",) if score else ())


def test_the_whole_corpus_goes_in_when_it_fits_in_document_id_order():
    plan = pack([c("b", 100, 1.0), c("c", 100), c("a", 100, 5.0)], budget_tokens=1000)
    assert plan.mode == "all" and plan.document_ids == ["a", "b", "c"] and plan.skipped == ()


def test_greedy_by_relevance_whole_documents_only_then_ordered_by_id():
    cands = [c("d1", 500, 9.0), c("d2", 700, 8.0), c("d3", 300, 7.0), c("d4", 100, 0.0), c("d5", 150, 1.0)]
    plan = pack(cands, budget_tokens=1100)
    # d1 (524) goes in; d2 (724) would overflow and is skipped, never cut; d3 and d5 fit; d4 matched nothing
    assert plan.mode == "selected"
    assert plan.document_ids == ["d1", "d3", "d5"]
    assert [s.document_id for s in plan.skipped] == ["d2"]
    assert plan.used_tokens <= 1100
    doc_numbers = {d["doc"]: d["document_id"] for d in plan.as_dict()["documents"]}
    assert doc_numbers == {1: "d1", 2: "d3", 3: "d5"}
    assert plan.as_dict()["skipped"][0]["reason"] == "no room left in the window"


def test_a_document_larger_than_the_budget_is_skipped_and_the_rest_still_packed():
    plan = pack([c("huge", 10_000, 50.0), c("small", 100, 0.5)], budget_tokens=1000)
    assert plan.document_ids == ["small"] and [s.document_id for s in plan.skipped] == ["huge"]


def test_questions_selecting_the_same_set_share_the_whole_prefix_and_leading_runs_share_theirs():
    docs = {i: pdf(f"document {i} body text " * 50) for i in "abc"}
    p1 = corpus_prompt([docs["a"], docs["b"], docs["c"]], "What does a say?")
    p2 = corpus_prompt([docs["a"], docs["b"], docs["c"]], "Where is c different?")
    assert p1.prefix == p2.prefix and p1.task != p2.task
    p3 = corpus_prompt([docs["a"], docs["b"]], "Another question")
    assert p1.prefix.startswith(p3.prefix)  # a, b: the same leading blocks, byte for byte
    assert 'index="1"' in p1.document and 'index="3"' in p1.document


def test_the_budget_is_the_window_less_frame_question_and_output():
    q = "What was the revenue?"
    frame = prompt_tokens(corpus_prompt([], q))
    assert budget_for(10_000, q, 2048) == 10_000 - frame - 2048
    assert frame < 400


def test_fit_exactly_drops_the_least_relevant_when_the_exact_prompt_is_over():
    docs = {"a": pdf("alpha " * 400), "b": pdf("beta " * 400), "c": pdf("gamma " * 400)}
    real = {k: count_tokens(d.text) for k, d in docs.items()}
    cands = [Candidate("a", real["a"] // 4, score=3.0), Candidate("b", real["b"] // 4, score=1.0),
             Candidate("c", real["c"] // 4, score=2.0)]  # ingest counts that understate: the plan takes all three
    q = "alpha gamma?"
    frame = prompt_tokens(corpus_prompt([], q))
    window = frame + 100 + real["a"] + real["c"] + 200  # room for a and c with their tags, not for b too
    plan = pack(cands, budget_tokens=budget_for(window, q, 100))
    assert plan.document_ids == ["a", "b", "c"]
    fitted, prompt, ordered = fit_exactly(plan, docs.__getitem__, q, window_tokens=window, output_tokens=100)
    assert fitted.document_ids == ["a", "c"] and [s.document_id for s in fitted.skipped] == ["b"]
    assert fitted.mode == "selected" and ordered == [docs["a"], docs["c"]]
    assert prompt_tokens(prompt) + 100 <= window


def test_citations_are_checked_against_the_document_they_name():
    a = pdf("Intro.", "The Zanzibar plant made 4711 widgets.", title="Plant report")
    b = pdf("Staff list", "Ops: Dana Reyes leads operations.")
    answer = ('The plant made 4711 widgets [doc 1, p. 2: "made 4711 widgets"], led by Dana Reyes '
              '[doc 2, p. 2: "Dana Reyes leads operations"]; not [doc 2, p. 1: "4711 widgets"] nor [doc 3, p. 1: "x"] '
              'nor [p. 2: "made 4711 widgets"].')
    checks = verify_citations(answer, [a, b])
    assert [(x.doc, x.status) for x in checks] == [(1, "verified"), (2, "verified"), (2, "unverified"),
                                                  (3, "invalid"), (None, "invalid")]


def test_nothing_fits_says_why():
    plan = pack([c("a", 5000), c("b", 5000)], budget_tokens=1000)
    assert plan.packed == ()
    assert "matches a word of the question" in str(nothing_fits([c("a", 5000), c("b", 5000)], plan))
    big = [c("a", 5000, 2.0)]
    assert "larger than the 1,000 tokens" in str(nothing_fits(big, pack(big, 1000)))
    assert "no ready documents" in str(nothing_fits([], pack([], 1000)))
    assert "lower max_tokens" in str(nothing_fits(big, pack(big, -50)))
    with pytest.raises(PromptError, match="empty"):
        corpus_prompt([], "  ")
