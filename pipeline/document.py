"""The extracted document: what PDF extraction and codebase packing produce, and prompts consume."""

from dataclasses import dataclass, field
from enum import StrEnum


class Kind(StrEnum):
    PDF = "pdf"
    CODEBASE = "codebase"


@dataclass(frozen=True)
class Section:
    """One page of a PDF or one file of a codebase, as the model will see it.

    `anchor` is what a citation names: "12" for page 12, "src/app.py" for a file.
    `text` is the section's text exactly as it appears in `ExtractedDocument.text` (anchor marker included).
    `status`: PDF pages: text | empty | scanned | garbled | failed; files: text.
    """

    index: int
    anchor: str
    status: str
    text: str
    title: str | None = None
    reason: str | None = None


@dataclass(frozen=True)
class Skipped:
    """Something left out of the document, with a reason a person can read."""

    path: str
    reason: str


@dataclass(frozen=True)
class ExtractedDocument:
    """A whole document as one text, plus its parts. `text` is the concatenation the prompt embeds."""

    kind: Kind
    text: str
    sections: tuple[Section, ...]
    metadata: dict = field(default_factory=dict)  # title, author, page_count / file_count, …
    skipped: tuple[Skipped, ...] = ()

    @property
    def title(self) -> str | None:
        return self.metadata.get("title")
