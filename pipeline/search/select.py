"""Choosing the documents a corpus question is asked of: search the scope, then pack (pipeline.prompts.corpus_pack).
The API's dry run and the worker's job call the same function, so a dry run shows what the job will send."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from pipeline.prompts.corpus_pack import Candidate, CorpusPack, pack
from pipeline.search import Scope, SearchResult, documents_in_scope, search_index


@dataclass(frozen=True)
class Selection:
    """The plan, what the search found, and every candidate (for the reason when nothing fits)."""

    plan: CorpusPack
    found: SearchResult
    candidates: tuple[Candidate, ...]
    text_keys: dict[str, str]  # document id → its extracted text's blob key

    def explain(self, plan: CorpusPack | None = None) -> dict:
        """The plan (documents with their `doc` numbers, skipped ones; `plan`: as finally fitted) and the terms."""
        return (plan or self.plan).as_dict() | {"terms": list(self.found.terms),
                                                "ignored_terms": list(self.found.ignored_terms)}


def select_documents(session: Session, scope: Scope, question: str, budget_tokens: int) -> Selection:
    """Search the scope's documents for the question and pack the best into `budget_tokens`."""
    found = search_index(session).search(session, scope, question)
    hits = {h.document_id: h for h in found.hits}
    docs = documents_in_scope(session, scope)
    candidates = []
    for d in docs:
        h = hits.get(d.id)
        candidates.append(Candidate(d.id, d.num_tokens or 0, d.title, h.score if h else 0.0,
                                    h.matched_terms if h else (), h.anchors if h else ()))
    return Selection(pack(candidates, budget_tokens), found, tuple(candidates),
                     {d.id: d.text_blob_key for d in docs if d.text_blob_key})
