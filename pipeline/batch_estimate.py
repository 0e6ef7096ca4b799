"""A batch's dry run (docs/batches.md): the items it would make, their prompt tokens, and the tokens expected from the
prefix cache, through pipeline.estimate — per document, the questions in the order dispatch sends them."""

from collections.abc import Sequence
from dataclasses import dataclass, replace

from pipeline.client import InferenceClient
from pipeline.document import ExtractedDocument
from pipeline.errors import EndpointUnavailable, RequestRejected
from pipeline.estimate import Estimate, estimate_batch
from pipeline.prompts import question_prompt


@dataclass(frozen=True)
class DocumentEstimate:
    document_id: str
    estimate: Estimate


def estimate_items(documents: Sequence[tuple[str, ExtractedDocument]], questions: Sequence[str], *, max_tokens: int,
                   thinking: bool = False, client: InferenceClient | None = None, cache_salt: str | None = None,
                   tokenizer_path: str | None = None) -> list[DocumentEstimate]:
    """One estimate per document over all its questions. With a client, the first question's cached tokens come from
    the endpoint's cache probe under `cache_salt` (the tenant's); an endpoint without a probe, or one that cannot be
    reached, gets estimate.py's documented fallback (the first cold, later ones hit the document's whole blocks).
    After one failed probe the rest of the documents are estimated without it (one control timeout per request, not
    one per document)."""
    out = []
    for document_id, doc in documents:
        # the document block is built (sanitized) once per document: a question only changes the task
        first = question_prompt(doc, questions[0], max_tokens=max_tokens, tokenizer_path=tokenizer_path)
        bare = replace(doc, text="", sections=(), skipped=())
        prompts = [first] + [replace(first, task=question_prompt(bare, q, tokenizer_path=tokenizer_path).task)
                             for q in questions[1:]]
        try:
            one = estimate_batch(prompts, client=client, thinking=thinking, tokenizer_path=tokenizer_path,
                                 cache_salt=cache_salt)
        except (EndpointUnavailable, RequestRejected):
            client = None  # the endpoint cannot probe now: stop asking it for this request
            one = estimate_batch(prompts, thinking=thinking, tokenizer_path=tokenizer_path)
        out.append(DocumentEstimate(document_id, one))
    return out
