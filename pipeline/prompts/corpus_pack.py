"""A question over a corpus: which whole documents go into the window, and the prompt over them
(docs/corpus-questions.md#packing).

All of the corpus when it fits; otherwise the most relevant documents (pipeline.search scores), greedily, each whole:
one that does not fit in what is left is skipped, never cut, and listed as left out for lack of room. The packed
documents are numbered in document-id order, not by score, so questions that select the same set share the whole
prompt prefix, and questions whose sets share a leading run of documents share that much of it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from pipeline.document import ExtractedDocument, Kind
from pipeline.errors import PromptError
from pipeline.prompts.budget import prompt_tokens
from pipeline.prompts.builders import QUESTION_MAX_CHARS, QUESTION_MAX_TOKENS, Prompt
from pipeline.prompts.document_block import documents_block, system_text
from pipeline.prompts.sanitize import sanitize

CORPUS_TASK = (
    "Answer the question below using only the documents above. Cite each claim in the format the system message "
    'describes, naming the document by its index: [doc 2, p. 12: "short quote"] or [doc 3, path/file.py:120: "short '
    'quote"]. If the documents do not contain the answer, say so plainly instead of guessing.\n\nQuestion: {question}'
)
BLOCK_OVERHEAD = 24  # tokens of a document's tags around its text (index, kind; a title adds its own)


@dataclass(frozen=True)
class Candidate:
    """A document of the corpus: its id, its text's tokens (counted at ingest), and its search score, if it matched."""

    document_id: str
    tokens: int
    title: str | None = None
    score: float = 0.0
    matched_terms: tuple[str, ...] = ()
    anchors: tuple[str, ...] = ()

    @property
    def block_tokens(self) -> int:
        """About what its `<document>` block costs in the prompt (the exact prompt is counted once built)."""
        return self.tokens + BLOCK_OVERHEAD + (len(self.title) // 3 + 1 if self.title else 0)

    def as_dict(self) -> dict:
        return {"document_id": self.document_id, "title": self.title, "tokens": self.tokens,
                "score": round(self.score, 4), "matched_terms": list(self.matched_terms), "anchors": list(self.anchors)}


@dataclass(frozen=True)
class CorpusPack:
    """What goes into the prompt: `packed` in document-id order (`doc N` is packed[N-1]); `skipped`: documents that
    matched but found no room, best first. `mode`: all (the whole corpus fits) or selected."""

    mode: str
    packed: tuple[Candidate, ...]
    skipped: tuple[Candidate, ...]
    budget_tokens: int

    @property
    def document_ids(self) -> list[str]:
        return [c.document_id for c in self.packed]

    @property
    def used_tokens(self) -> int:
        return sum(c.block_tokens for c in self.packed)

    def as_dict(self) -> dict:
        """The result's record of it: each packed document with its `doc` number, and the skipped ones."""
        return {"packing": self.mode, "budget_tokens": self.budget_tokens,
                "documents": [{"doc": i} | c.as_dict() for i, c in enumerate(self.packed, 1)],
                "skipped": [c.as_dict() | {"reason": "no room left in the window"} for c in self.skipped]}


def pack(candidates: Sequence[Candidate], budget_tokens: int) -> CorpusPack:
    """All candidates when they fit together; else those that matched, best score first, each only if it fits whole
    in the room left. Packed ones come back in document-id order."""
    by_id = sorted(candidates, key=lambda c: c.document_id)
    if sum(c.block_tokens for c in by_id) <= budget_tokens:
        return CorpusPack("all", tuple(by_id), (), budget_tokens)
    packed, skipped, used = [], [], 0
    for c in sorted((c for c in candidates if c.score > 0), key=lambda c: (-c.score, c.document_id)):
        if used + c.block_tokens <= budget_tokens:
            packed.append(c)
            used += c.block_tokens
        else:
            skipped.append(c)
    return CorpusPack("selected", tuple(sorted(packed, key=lambda c: c.document_id)), tuple(skipped), budget_tokens)


def corpus_prompt(docs: Sequence[ExtractedDocument], question: str, *, max_tokens: int = QUESTION_MAX_TOKENS,
                  tokenizer_path: str | None = None) -> Prompt:
    """The multi-document prompt: `[system][documents_block][task]`, documents numbered 1.. in the order given."""
    q = sanitize(question, tokenizer_path=tokenizer_path).strip()
    if not q:
        raise PromptError("the question is empty")
    if len(q) > QUESTION_MAX_CHARS:
        raise PromptError(f"the question is {len(q)} characters long; the limit is {QUESTION_MAX_CHARS}")
    kinds = [d.kind for d in docs] or [Kind.PDF]
    return Prompt(system_text(kinds, several=True), documents_block(docs, tokenizer_path=tokenizer_path),
                  CORPUS_TASK.format(question=q), max_tokens)


def budget_for(window_tokens: int, question: str, output_tokens: int, *, tokenizer_path: str | None = None) -> int:
    """Tokens left for document blocks: the window less the system text, the question's task and the output."""
    frame = prompt_tokens(corpus_prompt([], question, tokenizer_path=tokenizer_path), tokenizer_path=tokenizer_path)
    return window_tokens - frame - output_tokens


def nothing_fits(candidates: Sequence[Candidate], plan: CorpusPack) -> PromptError:
    """Why no document could be packed, with the numbers and what to do."""
    total = sum(c.block_tokens for c in candidates)
    if plan.budget_tokens <= 0:
        return PromptError("the model's window leaves no room for documents once the question and the answer's "
                           "tokens are counted: lower max_tokens, or turn thinking off (it reserves room to reason)")
    if not candidates:
        return PromptError("the corpus has no ready documents (in the filters given): add documents or widen them")
    if not any(c.score > 0 for c in candidates):
        return PromptError(f"none of the corpus's {len(candidates)} documents matches a word of the question, and "
                           f"together they are about {total:,} tokens, over the {plan.budget_tokens:,} the window "
                           "leaves: ask with words the documents use, or narrow the corpus with filters")
    return PromptError(f"every document that matches is larger than the {plan.budget_tokens:,} tokens the window "
                       "leaves for documents: ask about one of them alone, or use a model with a larger window")


def fit_exactly(plan: CorpusPack, load: Callable[[str], ExtractedDocument], question: str, *, window_tokens: int,
                output_tokens: int, max_tokens: int = QUESTION_MAX_TOKENS, tokenizer_path: str | None = None,
                ) -> tuple[CorpusPack, Prompt, list[ExtractedDocument]]:
    """Build the prompt over the packed documents and count it exactly; while it is over the window (the plan counts
    blocks approximately), the lowest-scored packed document moves to `skipped`. `load` reads a document's text."""
    docs = {c.document_id: load(c.document_id) for c in plan.packed}
    while True:
        ordered = [docs[c.document_id] for c in plan.packed]
        prompt = corpus_prompt(ordered, question, max_tokens=max_tokens, tokenizer_path=tokenizer_path)
        if not plan.packed or prompt_tokens(prompt, tokenizer_path=tokenizer_path) + output_tokens <= window_tokens:
            return plan, prompt, ordered
        drop = min(plan.packed, key=lambda c: (c.score, -c.block_tokens, c.document_id))  # least relevant, largest
        plan = replace(plan, mode="selected", packed=tuple(c for c in plan.packed if c is not drop),
                       skipped=tuple(sorted(plan.skipped + (drop,), key=lambda c: (-c.score, c.document_id))))
