"""Schemas of questions over a corpus (docs/corpus-questions.md): the request, the job's parameters, and the dry run's
plan. Imports nothing of api, so api.schemas can name CorpusQuestionParams among a job's parameters."""

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

DocumentKind = Literal["pdf", "codebase"]


class CorpusQuestionCreate(BaseModel):
    question: str = Field(min_length=1, max_length=20_000)
    thinking: bool = False
    max_tokens: int | None = Field(None, ge=1, description="the answer's cap (at most 2048; thinking adds room)")
    kinds: list[DocumentKind] | None = Field(None, max_length=2, description="only documents of these kinds")
    uploaded_after: datetime | None = Field(None, description="only documents uploaded at or after this time")
    uploaded_before: datetime | None = Field(None, description="only documents uploaded before this time")


class CorpusQuestionParams(BaseModel):
    """A corpus question job's parameters, as the job runs them (max_tokens already capped)."""

    corpus_id: str
    question: str
    thinking: bool
    max_tokens: int
    kinds: list[DocumentKind] | None = None
    uploaded_after: datetime | None = None
    uploaded_before: datetime | None = None


class PlannedDocument(BaseModel):
    """A document and why it was chosen (or not): its search score, the question's terms it holds, its best pages."""

    doc: int | None = Field(None, description="its number in the prompt (`[doc N, …]` citations); null when skipped")
    document_id: str
    title: str | None
    tokens: int = Field(description="its text's tokens, as counted at ingest")
    score: float
    matched_terms: list[str]
    anchors: list[str] = Field(description="its best-matching pages or files, best first")
    reason: str | None = Field(None, description="why it was left out (skipped documents only)")


class CorpusQuestionPlan(BaseModel):
    """`dry_run=true`: the documents the question would be asked over; nothing is created."""

    packing: Literal["all", "selected"] = Field(description="all: the whole corpus fits the window; selected: the "
                                                            "most relevant whole documents that fit")
    window_tokens: int
    budget_tokens: int = Field(description="tokens the window leaves for documents (less the system text, the "
                                           "question and the answer's room)")
    documents: list[PlannedDocument] = Field(description="what goes into the prompt, in document-id order")
    skipped: list[PlannedDocument] = Field(description="documents that match but found no room, best first")
    terms: list[str] = Field(description="the question's search terms")
    ignored_terms: list[str] = Field(description="terms too common to search by (in too many pages)")
    prompt_tokens: int = Field(description="the prompt's tokens, counted exactly")
    cached_tokens: int = Field(description="prompt tokens expected from the prefix cache")
    cache_source: Literal["probe", "assumed", "cold"] = Field(
        description="probe: the inference server's cache probe said; assumed: the leading documents shared with the "
                    "corpus's previous question (whole 128-token blocks); cold: neither")
    max_output_tokens: int


class CorpusCoverage(BaseModel):
    """What a corpus question's result was made from (docs/corpus-questions.md): the documents in the prompt, with
    the `doc` number each citation names, and those that matched but were left out for lack of room."""

    mode: Literal["corpus"]
    corpus_id: str
    packing: Literal["all", "selected"]
    budget_tokens: int = Field(description="tokens the window left for documents")
    documents: list[PlannedDocument] = Field(description="in the prompt, in document-id order (`doc` 1..n)")
    skipped: list[PlannedDocument] = Field(description="matched but left out for lack of room, best first")
    terms: list[str] = Field(description="the question's search terms")
    ignored_terms: list[str] = Field(description="terms too common to search by")
