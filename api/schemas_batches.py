"""Request and response bodies of /v1/corpora and /v1/batches (docs/batches.md); the rest are in api.schemas."""

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from api.schemas import Citation, Page, Usage
from pipeline.records.batches import MAX_ITEMS
from pipeline.records.models import BatchState, JobState

MAX_QUESTIONS = 1000
MAX_DOCUMENT_IDS = 10_000
NAME_MAX = 200  # the corpora.name column
ID_PATTERN = "^[0-9a-f]{32}$"
IdString = Annotated[str, StringConstraints(pattern=ID_PATTERN)]
Question = Annotated[str, StringConstraints(min_length=1, max_length=20_000, pattern=r"\S")]


class CorpusCreate(BaseModel):
    name: str = Field(min_length=1, max_length=NAME_MAX, pattern=r"^[^\x00-\x1f\x7f]+$",
                      description="unique among the tenant's corpora")


class CorpusUpdate(BaseModel):
    name: str = Field(min_length=1, max_length=NAME_MAX, pattern=r"^[^\x00-\x1f\x7f]+$", description="a new name")


class CorpusPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    document_count: int = Field(0, description="documents in the corpus now")
    created_at: datetime
    updated_at: datetime


class CorpusList(Page[CorpusPublic]):
    pass


class CorpusDocumentsAdd(BaseModel):
    document_ids: list[IdString] = Field(min_length=1, max_length=MAX_DOCUMENT_IDS,
                                         description="the tenant's documents to add (one already in the corpus "
                                                     "stays)")


class CorpusDocumentsAdded(BaseModel):
    corpus: CorpusPublic
    added: int = Field(description="documents that were not in the corpus before")


class BatchCreate(BaseModel):
    questions: list[Question] = Field(min_length=1, max_length=MAX_QUESTIONS,
                                 description=f"1-{MAX_QUESTIONS} questions, each asked about every document")
    document_ids: list[IdString] | None = Field(None, min_length=1, max_length=MAX_DOCUMENT_IDS,
                                           description="the documents (all ready; documents x questions at most "
                                                       f"{MAX_ITEMS:,}); or give corpus_id")
    corpus_id: str | None = Field(None, pattern=ID_PATTERN,
                                  description="a corpus: its documents at submission; or give document_ids")
    mode: Literal["documents", "corpus"] = Field(
        "documents", description="documents: one item per (document, question); corpus: one item per question, "
                                 "answered over the corpus's most relevant whole documents (corpus_id required)")
    thinking: bool = Field(False, description="let the model think first (off by default)")
    max_tokens: int | None = Field(None, ge=1, description="answer cap per item (default and maximum: a "
                                                           "question's cap)")

    @model_validator(mode="after")
    def _shape(self):
        if self.mode == "corpus":  # checked by the route: 400 naming what is missing (docs/batches.md#corpus-mode)
            return self
        if (self.document_ids is None) == (self.corpus_id is None):
            raise ValueError("give exactly one of document_ids or corpus_id")
        return self


class BatchCounts(BaseModel):
    queued: int = 0
    running: int = 0
    done: int = 0
    failed: int = 0
    cancelled: int = 0
    total: int = 0


class BatchPublic(BaseModel):
    id: str
    state: BatchState
    paused_reason: str | None = Field(description="why a paused batch waits, and until when")
    resume_at: datetime | None = Field(description="when a paused batch tries again")
    corpus_id: str | None
    mode: str = Field(description="documents (one item per document and question) or corpus (one per question)")
    questions: list[str]
    thinking: bool
    max_tokens: int
    counts: BatchCounts = Field(description="items per state, and their total")
    prompt_tokens: int = Field(description="prompt tokens of the items answered so far")
    cached_prompt_tokens: int = Field(description="of those, served from the prefix cache")
    completion_tokens: int
    created_at: datetime
    finished_at: datetime | None


class BatchList(Page[BatchPublic]):
    pass


class BatchItemPublic(BaseModel):
    id: str
    position: int = Field(description="the item's place: all questions of one document are together")
    document_id: str | None = Field(description="null once the document was deleted")
    document_name: str | None
    question_index: int
    question: str
    state: JobState
    job_id: str | None = Field(description="the answer job once dispatched")
    coverage: dict | None = Field(None, description="corpus mode: the documents used (`doc` numbers, scores, matched "
                                                    "terms) and those left out for lack of room, as in the result")
    answer: str | None
    citations: list[Citation] | None = Field(description="each with its verification status")
    usage: Usage | None
    error: str | None
    finished_at: datetime | None


class BatchItemList(Page[BatchItemPublic]):
    pass


class DocumentEstimate(BaseModel):
    document_id: str
    items: int
    prompt_tokens: int
    cached_tokens: int


class QuestionEstimate(BaseModel):
    """Corpus mode: one question's plan (docs/corpus-questions.md#packing)."""

    question_index: int
    question: str
    set_key: str | None = Field(description="the selected documents' ids in prompt order, comma-separated; questions "
                                            "with the same key run back to back and share the prompt prefix")
    document_ids: list[str]
    skipped_document_ids: list[str] = Field(description="relevant documents left out for lack of room")
    packing: str | None = Field(description="all (the whole corpus fits) or selected; null when nothing fits")
    prompt_tokens: int
    cached_tokens: int
    error: str | None = Field(None, description="why no document could be used (the item would fail)")


class BatchEstimate(BaseModel):
    """A dry run: nothing was created."""

    dry_run: bool = True
    items: int
    documents: int
    prompt_tokens: int = Field(description="prompt tokens of every item together")
    cached_tokens: int = Field(description="of those, expected from the prefix cache")
    tokens_to_prefill: int
    max_output_tokens: int
    cache_source: str = Field(description="probe (the server's cache probe under the tenant's salt), assumed (every "
                                          "question after the first about a document hits its whole blocks) or cold")
    seconds: float = Field(description="a rough time at the estimate's default rates")
    per_document: list[DocumentEstimate]
    mode: str = "documents"
    per_question: list[QuestionEstimate] = Field(default_factory=list, description="corpus mode: each question's "
                                                                                   "selected documents and tokens")
