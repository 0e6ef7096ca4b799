"""Questions about a document over the window, in sections (docs/over-window.md): the whole sections (pages, files)
most relevant to the question that fit the window go into the prompt, in document order; the rest are left out and
named. Relevance is a per-section full-text rank: BM25 of the question's search terms over each page's or file's
terms (the terms of the full-text index, pipeline/search/terms.py); no section is ever cut.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from pipeline.document import ExtractedDocument, Kind
from pipeline.errors import SectionTooLong
from pipeline.prompts.budget import Budget, part_document, prompt_tokens
from pipeline.prompts.builders import Prompt, question_prompt
from pipeline.search.scoring import idf, row_contribution
from pipeline.search.terms import query_terms, section_terms
from pipeline.tokens import count_tokens


@dataclass(frozen=True)
class Selection:
    """The prompt built from the chosen sections, and which anchors went in and which were left out."""

    prompt: Prompt
    included: tuple[str, ...]
    left_out: tuple[str, ...]
    kind: Kind

    def coverage(self) -> dict:
        """The result's `coverage`: the anchors included and left out, and both as spans for people."""
        return {"mode": "selected", "included": list(self.included), "left_out": list(self.left_out),
                "included_spans": spans(self.kind, self.included), "left_out_spans": spans(self.kind, self.left_out)}


def rank(doc: ExtractedDocument, question: str) -> list[int]:
    """Section positions from most to least relevant to `question` (BM25, pipeline/search/scoring.py's); ties keep
    document order."""
    terms = set(query_terms(question))
    bags = [Counter(section_terms(doc, s.text)) for s in doc.sections]
    if not bags:
        return []
    avg = sum(sum(b.values()) for b in bags) / len(bags) or 1.0
    n = len(bags)
    idfs = {t: idf(sum(1 for b in bags if t in b), n) for t in terms}

    def score(bag: Counter) -> float:
        length = sum(bag.values())
        return sum(row_contribution(bag.get(t, 0), length, avg, idfs[t]) for t in terms)

    scores = [score(b) for b in bags]
    return sorted(range(n), key=lambda i: (-scores[i], i))


def select_for_question(doc: ExtractedDocument, question: str, budget: Budget, *, max_tokens: int) -> Selection:
    """The most relevant whole sections that fit `budget`'s window with the answer's `max_tokens` (thinking room
    included by the caller), packed in document order. SectionTooLong when not even the best section fits."""
    path = budget.tokenizer_path
    empty = ExtractedDocument(doc.kind, "", (), dict(doc.metadata))
    overhead = prompt_tokens(question_prompt(empty, question, max_tokens=max_tokens, tokenizer_path=path),
                             tokenizer_path=path)
    room = budget.window_tokens - max_tokens - overhead
    order = rank(doc, question)
    chosen: list[int] = []
    used = 0
    for i in order:
        size = count_tokens(doc.sections[i].text, tokenizer_path=path) + 1  # +1: a join can cost a token
        if used + size <= room:
            chosen.append(i)
            used += size
    while chosen:  # the exact count, with the sanitized text: drop the least relevant until it fits
        picked = tuple(doc.sections[i] for i in sorted(chosen))
        prompt = question_prompt(part_document(doc, picked), question, max_tokens=max_tokens, tokenizer_path=path)
        if prompt_tokens(prompt, tokenizer_path=path) + max_tokens <= budget.window_tokens:
            included = {s.anchor for s in picked}
            return Selection(prompt, tuple(s.anchor for s in picked),
                             tuple(s.anchor for s in doc.sections if s.anchor not in included), doc.kind)
        chosen.pop()
    best = doc.sections[order[0]] if order else None
    noun = "page" if doc.kind == Kind.PDF else "file"
    tokens = count_tokens(best.text, tokenizer_path=path) if best else 0
    raise SectionTooLong(
        f"not even the most relevant {noun} ({best.anchor if best else '-'}, about {tokens:,} tokens) fits the "
        f"{budget.window_tokens:,}-token window with the question and a {max_tokens:,}-token answer",
        anchor=best.anchor if best else "", prompt_tokens=tokens + overhead, window_tokens=budget.window_tokens,
        max_output_tokens=max_tokens)


def spans(kind: Kind, anchors: tuple[str, ...] | list[str]) -> str:
    """`pages 1-3, 7, 9-12` for pages (runs of consecutive numbers), `files a.py, b.py` for files; "" for none."""
    if not anchors:
        return ""
    if kind != Kind.PDF or not all(a.isdigit() for a in anchors):
        return ("files " if len(anchors) > 1 else "file ") + ", ".join(anchors)
    nums = sorted(int(a) for a in anchors)
    runs: list[list[int]] = []
    for n in nums:
        if runs and n == runs[-1][1] + 1:
            runs[-1][1] = n
        else:
            runs.append([n, n])
    text = ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)
    return ("pages " if len(nums) > 1 else "page ") + text
