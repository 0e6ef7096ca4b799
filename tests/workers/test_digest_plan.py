"""What a digest prompt holds (pipeline.digests.plan): the documents whole when they fit the window together with
the answer, else their summaries in the same order; citations checked against the documents and mapped to ids."""

import pytest

from pipeline.digests.plan import SUMMARIES, WHOLE, digest_citations, plan_digest, summary_document
from pipeline.document import ExtractedDocument, Kind, Section
from pipeline.errors import DocumentTooLong
from pipeline.prompts import Budget


def pdf(title: str, *pages: str) -> ExtractedDocument:
    secs = tuple(Section(i, str(i + 1), "text", f"[page {i + 1}]\n{t}\n") for i, t in enumerate(pages))
    return ExtractedDocument(Kind.PDF, "".join(s.text for s in secs), secs, {"title": title})


ORIGINALS = [pdf("Q1", *(f"Revenue grew by {i} percent in region {i}. " * 40 for i in range(20))),
             pdf("Q2", *(f"Costs fell by {i} percent in plant {i}. " * 40 for i in range(20)))]
SUMMARIES_ = [summary_document(ORIGINALS[0], 'Revenue grew [p. 2: "Revenue grew by 1 percent"].', "Q1"),
              summary_document(ORIGINALS[1], 'Costs fell [p. 3: "Costs fell by 2 percent"].', "Q2")]


def test_documents_that_fit_together_go_whole():
    plan = plan_digest(ORIGINALS, SUMMARIES_, Budget(window_tokens=1_048_576))
    assert plan.mode == WHOLE and "region 19" in plan.prompt.document and 'index="2"' in plan.prompt.document


def test_documents_over_the_window_together_go_as_their_summaries_in_order():
    whole = plan_digest(ORIGINALS, SUMMARIES_, Budget(window_tokens=1_048_576)).prompt_tokens
    plan = plan_digest(ORIGINALS, SUMMARIES_, Budget(window_tokens=whole))  # the answer's room no longer fits
    assert plan.mode == SUMMARIES and plan.prompt_tokens < whole // 5
    doc = plan.prompt.document
    assert doc.index('title="Q1 (summary)"') < doc.index('title="Q2 (summary)"') and "region 19" not in doc


def test_even_the_summaries_over_the_window_fail_with_both_counts():
    with pytest.raises(DocumentTooLong, match="window is 1,000 tokens"):
        plan_digest(ORIGINALS, SUMMARIES_, Budget(window_tokens=1000))


def test_citations_are_checked_against_the_documents_and_named_by_id():
    text = ('Growth [doc 1, p. 2: "Revenue grew by 1 percent"]; costs [doc 2, p. 3: "Costs fell by 9 percent"]; '
            'and [doc 3, p. 1: "nothing"].')
    cites = digest_citations(text, ORIGINALS, ["id-q1", "id-q2"])
    assert [(c["doc"], c.get("document_id"), c["status"]) for c in cites] == [
        (1, "id-q1", "verified"), (2, "id-q2", "unverified"), (3, None, "invalid")]
