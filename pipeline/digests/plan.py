"""What one digest prompt holds: the documents whole when they fit the window together (with the digest's answer),
otherwise their summaries — each summary in its document's place, under its title, so `[doc N, …]` still names the
same document. Citations are always checked against the documents themselves, and each gets its document id."""

from dataclasses import asdict, dataclass

from pipeline.citations import verify_citations
from pipeline.document import ExtractedDocument
from pipeline.errors import DocumentTooLong
from pipeline.prompts import Budget, Prompt, check_fits, digest_prompt

WHOLE, SUMMARIES = "whole", "summaries"


@dataclass(frozen=True)
class DigestPlan:
    mode: str  # whole | summaries
    prompt: Prompt
    prompt_tokens: int


def summary_document(original: ExtractedDocument, summary: str, title: str | None) -> ExtractedDocument:
    """A document's summary standing in for it in the digest prompt (same kind, so the system text's citation
    format is the document's own)."""
    name = title or original.title or "document"
    return ExtractedDocument(kind=original.kind, text=summary, sections=(), metadata={"title": f"{name} (summary)"})


def plan_digest(originals: list[ExtractedDocument], summaries: list[ExtractedDocument], budget: Budget) -> DigestPlan:
    """The whole documents if their prompt fits `budget`, else the summaries' (DocumentTooLong if even that does
    not fit, with both counts)."""
    assert originals and len(originals) == len(summaries)
    whole = digest_prompt(originals, tokenizer_path=budget.tokenizer_path)
    try:
        return DigestPlan(WHOLE, whole, check_fits(whole, budget))
    except DocumentTooLong:
        pass
    short = digest_prompt(summaries, tokenizer_path=budget.tokenizer_path)
    return DigestPlan(SUMMARIES, short, check_fits(short, budget))


def digest_citations(text: str, originals: list[ExtractedDocument], document_ids: list[str]) -> list[dict]:
    """Every `[doc N, …]` citation in the digest, checked against document N itself, with its `document_id`."""
    out = []
    for c in verify_citations(text, originals):
        item = asdict(c)
        if c.doc is not None and 1 <= c.doc <= len(document_ids):
            item["document_id"] = document_ids[c.doc - 1]
        out.append(item)
    return out
