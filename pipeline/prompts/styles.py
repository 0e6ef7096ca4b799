"""Summary styles: the task text each one asks for and its output cap in tokens."""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.errors import PromptError


@dataclass(frozen=True)
class SummaryStyle:
    """One way to summarize; `max_tokens` caps the answer (and counts against the window)."""

    name: str
    task: str
    max_tokens: int


STYLES = {
    s.name: s
    for s in (
        SummaryStyle(
            "brief",
            "Summarize the document above in one short paragraph of at most 120 words: what it is, its main point, "
            "and its most important conclusion. Cite the pages or files the key facts come from.",
            512,
        ),
        SummaryStyle(
            "detailed",
            "Write a detailed summary of the document above. Start with a one-paragraph overview, then cover each "
            "major part in order under its own Markdown heading, keeping the key facts, figures, arguments and "
            "conclusions. Cite every specific fact.",
            4096,
        ),
        SummaryStyle(
            "executive",
            "Write an executive summary of the document above for a busy decision maker: a one-sentence bottom "
            "line, then at most five bullet points on what matters (decisions, risks, numbers, deadlines, open "
            "questions), then one line on what to do next. Cite each bullet.",
            1024,
        ),
        SummaryStyle(
            "per-section",
            "Summarize the document above section by section, in document order. For a PDF, a section is a "
            "chapter or top-level heading (or a page when there are no headings); for a codebase, a top-level "
            "directory or file. For each, write its name as a Markdown heading and two to four sentences on its "
            "content, with citations.",
            8192,
        ),
    )
}


def get_style(name: str) -> SummaryStyle:
    """The style called `name`, or a PromptError listing the styles there are."""
    try:
        return STYLES[name]
    except KeyError:
        raise PromptError(f"unknown summary style {name!r}; choose one of: {', '.join(STYLES)}") from None
