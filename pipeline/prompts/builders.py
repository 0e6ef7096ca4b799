"""Prompt builders: summary (by style), question answering with citations, digest, and the over-window fallback.

Each returns a `Prompt` whose messages are `[system, user]` with user = `[document block][task]`; nothing that
varies per request (question, time, ids) comes before the end of the document block.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pipeline.document import ExtractedDocument
from pipeline.errors import PromptError
from pipeline.prompts.document_block import (
    BLOCK_END,
    document_block,
    documents_block,
    open_tag,
    system_text,
)
from pipeline.prompts.sanitize import sanitize
from pipeline.prompts.styles import get_style

QUESTION_MAX_TOKENS = 2048
DIGEST_MAX_TOKENS = 4096
PART_MAX_TOKENS = 1024
QUESTION_MAX_CHARS = 20_000
THINKING_TOKENS = 8192  # extra output room in thinking mode: max_tokens counts the reasoning too

QUESTION_TASK = (
    "Answer the question below using only the document above. Cite each claim in the format the system message "
    "describes. If the document does not contain the answer, say so plainly instead of guessing.\n\n"
    "Question: {question}"
)
DIGEST_TASK = (
    "Write a digest of the {n} documents above. For each document, give its title (or what it is) and the two or "
    "three things in it that matter most, with citations. Then say what the documents have in common, where they "
    "disagree, and what stands out across them."
)
PART_TASK = (
    "The document above is part {part} of {parts} of a longer document ({span}); it was too long for one pass, so "
    "the parts are summarized one by one and the summaries combined afterwards. Summarize this part: keep its key "
    "facts, figures, names and conclusions, and keep a citation on each so it can be checked later."
)
COMBINE_TASK = (
    "The document above holds the summaries of all {parts} consecutive parts of one long document, in order. "
    "Combine them into a single summary of the whole document. Keep the citations that support what you keep.\n\n"
    "{style_task}"
)


@dataclass(frozen=True)
class Prompt:
    """A ready request: `system` + `document` is the stable prefix; `task` varies; `max_tokens` caps the output."""

    system: str
    document: str
    task: str
    max_tokens: int

    @property
    def messages(self) -> list[dict[str, str]]:
        """OpenAI-style messages: a system message, then one user message `[document block][task]`."""
        return [{"role": "system", "content": self.system}, {"role": "user", "content": self.document + self.task}]

    def output_tokens(self, thinking: bool = False) -> int:
        """The max_tokens to send: the answer's cap, plus THINKING_TOKENS of reasoning when thinking is on."""
        return self.max_tokens + (THINKING_TOKENS if thinking else 0)

    @property
    def prefix(self) -> str:
        """Everything before the task; byte-identical for every request about the same document(s)."""
        return self.system + self.document


def _task(text: str) -> str:
    # NOTE: the task must start with a letter: a leading newline or space could merge with the block's last token
    text = text.strip()
    assert text[:1].isalpha(), f"a task must start with a letter, got {text[:20]!r}"
    return text


def summary_prompt(doc: ExtractedDocument, style: str = "brief", *, tokenizer_path: str | None = None) -> Prompt:
    """Summarize the whole document in one of the styles of `STYLES` (brief, detailed, executive, per-section)."""
    s = get_style(style)
    block = document_block(doc, tokenizer_path=tokenizer_path)
    return Prompt(system_text([doc.kind]), block, _task(s.task), s.max_tokens)


def warmup_prompt(doc: ExtractedDocument, *, tokenizer_path: str | None = None) -> Prompt:
    """The stable prefix alone (no task, 1 output token): prefills the document once before a burst of questions,
    and on DeepSeek's API, which persists a "cache prefix unit" at request boundaries, ends one exactly at the
    document's end."""
    return Prompt(system_text([doc.kind]), document_block(doc, tokenizer_path=tokenizer_path), "", 1)


def question_prompt(
    doc: ExtractedDocument, question: str, *, max_tokens: int = QUESTION_MAX_TOKENS, tokenizer_path: str | None = None
) -> Prompt:
    """Answer one question about the document, citing pages or files; the question is sanitized like the document."""
    q = sanitize(question, tokenizer_path=tokenizer_path).strip()  # inner newlines kept: questions may quote code
    if not q:
        raise PromptError("the question is empty")
    if len(q) > QUESTION_MAX_CHARS:
        raise PromptError(f"the question is {len(q)} characters long; the limit is {QUESTION_MAX_CHARS}")
    block = document_block(doc, tokenizer_path=tokenizer_path)
    return Prompt(system_text([doc.kind]), block, _task(QUESTION_TASK.format(question=q)), max_tokens)


def digest_prompt(
    docs: Sequence[ExtractedDocument], *, focus: str | None = None, tokenizer_path: str | None = None
) -> Prompt:
    """A digest over several documents (numbered 1.. in the order given); `focus` is appended to the task."""
    if not docs:
        raise PromptError("a digest needs at least one document")
    task = DIGEST_TASK.format(n=len(docs))
    if focus and focus.strip():
        task += "\n\nFocus: " + " ".join(sanitize(focus, tokenizer_path=tokenizer_path).split())
    block = documents_block(docs, tokenizer_path=tokenizer_path)
    return Prompt(system_text([d.kind for d in docs], several=True), block, _task(task), DIGEST_MAX_TOKENS)


def part_prompt(
    part: ExtractedDocument, *, index: int, parts: int, span: str, tokenizer_path: str | None = None
) -> Prompt:
    """Fallback map step: summarize one part (whole sections only) of a document too long for the window."""
    block = document_block(part, tokenizer_path=tokenizer_path)
    task = PART_TASK.format(part=index, parts=parts, span=span)
    return Prompt(system_text([part.kind]), block, _task(task), PART_MAX_TOKENS)


def combine_prompt(
    doc: ExtractedDocument, summaries: Sequence[tuple[str, str]], style: str = "brief", *,
    tokenizer_path: str | None = None,
) -> Prompt:
    """Fallback reduce step: combine `(span, summary)` pairs of consecutive parts into one summary in `style`."""
    s = get_style(style)
    body = "".join(
        f"## Part {i}: {span}\n\n{sanitize(text, tokenizer_path=tokenizer_path).strip()}\n\n"
        for i, (span, text) in enumerate(summaries, 1)
    )
    block = open_tag(doc, tokenizer_path=tokenizer_path) + body + BLOCK_END
    task = COMBINE_TASK.format(parts=len(summaries), style_task=s.task)
    return Prompt(system_text([doc.kind]), block, _task(task), s.max_tokens)
