"""Window policy: a document that fits goes whole; one that does not fails with both token counts, or (opt-in)
is planned as whole sections grouped into parts that each fit — never blind fixed-size chunks."""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.document import ExtractedDocument, Kind, Section
from pipeline.errors import DocumentTooLong, SectionTooLong
from pipeline.prompts.builders import PART_MAX_TOKENS, THINKING_TOKENS, Prompt, part_prompt, summary_prompt
from pipeline.tokens import count_tokens

V4_WINDOW = 1_048_576  # max_model_len of DeepSeek-V4 (tokenizer_config.json model_max_length)
CHAT_OVERHEAD = 4  # BOS, <｜User｜>, <｜Assistant｜>, <think> or </think>


@dataclass(frozen=True)
class Budget:
    """The model's window in tokens (prompt + output must fit) and the tokenizer that counts for it."""

    window_tokens: int = V4_WINDOW
    tokenizer_path: str | None = None
    thinking: bool = False  # thinking mode: the output cap grows by THINKING_TOKENS (reasoning counts)

    def __post_init__(self):
        assert self.window_tokens > 0, f"window_tokens must be positive, got {self.window_tokens}"


@dataclass(frozen=True)
class Part:
    """Consecutive whole sections summarized together in the fallback; `span` names them for people and prompts."""

    sections: tuple[Section, ...]
    span: str
    prompt_tokens: int


@dataclass(frozen=True)
class Plan:
    """How a document will be summarized: `whole` (one prompt) or `parts` (map over parts, then combine)."""

    mode: str
    prompt_tokens: int  # the whole-document prompt, as if sent whole
    max_output_tokens: int
    window_tokens: int
    parts: tuple[Part, ...] = ()


def prompt_tokens(prompt: Prompt, *, tokenizer_path: str | None = None) -> int:
    """Tokens the V4 chat encoding gives this prompt (system + user + generation prompt); the block is counted once."""
    count = lambda text: count_tokens(text, tokenizer_path=tokenizer_path)
    # NOTE: block and task tokenize independently (the block's last token cannot merge with the task), so the sum
    # is exact, and a cached count of the big block serves every question about the document.
    return CHAT_OVERHEAD + count(prompt.system) + count(prompt.document) + count(prompt.task)


def check_fits(prompt: Prompt, budget: Budget) -> int:
    """The prompt's token count, or DocumentTooLong with both counts when prompt + output cap exceeds the window."""
    n = prompt_tokens(prompt, tokenizer_path=budget.tokenizer_path)
    out = prompt.output_tokens(budget.thinking)
    if n + out > budget.window_tokens:
        raise DocumentTooLong(
            f"the prompt is {n:,} tokens and the answer may take {out:,} more, but the model's window "
            f"is {budget.window_tokens:,} tokens; the document does not fit whole "
            "(the sectioned fallback can summarize it in parts)",
            prompt_tokens=n, window_tokens=budget.window_tokens, max_output_tokens=out,
        )
    return n


def fit(doc: ExtractedDocument, budget: Budget, *, style: str = "brief", fallback: bool = False) -> Plan:
    """Plan a summary: whole if it fits; else DocumentTooLong, or with `fallback` a plan of parts that each fit."""
    prompt = summary_prompt(doc, style, tokenizer_path=budget.tokenizer_path)
    n = prompt_tokens(prompt, tokenizer_path=budget.tokenizer_path)
    out = prompt.output_tokens(budget.thinking)
    if n + out <= budget.window_tokens:
        return Plan("whole", n, out, budget.window_tokens)
    if not fallback:
        check_fits(prompt, budget)  # raises with both counts
    parts = _plan_parts(doc, budget)
    return Plan("parts", n, out, budget.window_tokens, parts)


def part_document(doc: ExtractedDocument, sections: tuple[Section, ...]) -> ExtractedDocument:
    """The sub-document a part's prompt embeds: its sections' text in order, the parent's metadata."""
    text = "".join(s.text if s.text.endswith("\n") else s.text + "\n" for s in sections)
    return ExtractedDocument(doc.kind, text, sections, dict(doc.metadata))


def span_of(kind: Kind, sections: tuple[Section, ...]) -> str:
    """`pages 3-17` / `page 4` for PDFs, `files a.py to z.py` / `file a.py` for codebases."""
    first, last = sections[0].anchor, sections[-1].anchor
    noun = "page" if kind == Kind.PDF else "file"
    if first == last:
        return f"{noun} {first}"
    return f"pages {first}-{last}" if kind == Kind.PDF else f"files {first} to {last}"


def _part(doc: ExtractedDocument, sections: tuple[Section, ...], budget: Budget) -> Part:
    sub = part_document(doc, sections)
    span = span_of(doc.kind, sections)
    prompt = part_prompt(sub, index=1, parts=1, span=span, tokenizer_path=budget.tokenizer_path)
    return Part(sections, span, prompt_tokens(prompt, tokenizer_path=budget.tokenizer_path))


def _plan_parts(doc: ExtractedDocument, budget: Budget) -> tuple[Part, ...]:
    """Greedy grouping of whole sections; a group closes early at a titled section (a heading) in its second half."""
    part_out = PART_MAX_TOKENS + (THINKING_TOKENS if budget.thinking else 0)
    limit = budget.window_tokens - part_out - 32  # 32: room for the part numbers in the task
    sizes = [count_tokens(s.text, tokenizer_path=budget.tokenizer_path) for s in doc.sections]
    overhead = _part(doc, doc.sections[:1], budget).prompt_tokens - sizes[0] if doc.sections else 0
    parts: list[Part] = []
    start = 0
    while start < len(doc.sections):
        end, used = start, overhead
        while end < len(doc.sections) and used + sizes[end] + 1 <= limit:
            used += sizes[end] + 1
            end += 1
        if end == start:
            raise _too_long(doc, start, sizes[start] + overhead, budget)
        if end < len(doc.sections):  # prefer to break at a boundary (heading / directory) in the group's second half
            heads = [i for i in range(start + 1, end + 1) if _opens_unit(doc, i) and i >= start + (end - start) / 2]
            end = heads[-1] if heads else end
        part = _part(doc, doc.sections[start:end], budget)
        while part.prompt_tokens > limit and end - start > 1:  # BPE at section joins can differ from the sum
            end -= 1
            part = _part(doc, doc.sections[start:end], budget)
        if part.prompt_tokens > limit:
            raise _too_long(doc, start, part.prompt_tokens, budget)
        parts.append(part)
        start = end
    return tuple(parts)


def _opens_unit(doc: ExtractedDocument, i: int) -> bool:
    """Whether section i starts a new unit: a titled page (heading) in a PDF, a new directory in a codebase."""
    if doc.kind == Kind.PDF:
        return bool(doc.sections[i].title)
    return doc.sections[i].anchor.rpartition("/")[0] != doc.sections[i - 1].anchor.rpartition("/")[0]


def _too_long(doc: ExtractedDocument, index: int, tokens: int, budget: Budget) -> SectionTooLong:
    s = doc.sections[index]
    out = PART_MAX_TOKENS + (THINKING_TOKENS if budget.thinking else 0)
    return SectionTooLong(
        f"{'page' if doc.kind == Kind.PDF else 'file'} {s.anchor} alone is about {tokens:,} tokens with the prompt, "
        f"over the {budget.window_tokens:,}-token window less the {out:,}-token answer; it cannot be "
        "summarized even in parts (split that section, or use a model with a larger window)",
        anchor=s.anchor, prompt_tokens=tokens, window_tokens=budget.window_tokens, max_output_tokens=out,
    )
