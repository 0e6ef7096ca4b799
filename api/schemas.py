"""Request and response bodies (XCreate / XPublic, as the FastAPI template names them); `Page` for every list."""

from datetime import datetime
from typing import Generic, Literal, TypeVar

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, computed_field

from api.schemas_corpus import CorpusCoverage, CorpusQuestionParams
from pipeline.prompts.styles import STYLES
from pipeline.records.models import DocumentStatus, JobKind, JobState

Style = Literal[tuple(STYLES)]  # type: ignore[valid-type]
OverWindow = Literal["refuse", "sections"]
OVER_WINDOW = Field("refuse", description="a document over the model's window: `refuse` (400 with both token "
                    "counts, the default) or `sections` (a summary of its parts, each whole sections, then combined; a "
                    "question over the most relevant whole sections that fit); docs/over-window.md")
Item = TypeVar("Item")


class ErrorBody(BaseModel):
    """Every error of every route: a machine-readable `error` to branch on and a `detail` for a person
    (the values of `error` and their statuses: docs/api-conventions.md)."""

    error: str = Field(description="machine-readable error type, e.g. not_found, too_large, idempotency_key_reused")
    detail: str = Field(description="what went wrong and what to do about it, for a person")


class Page(BaseModel, Generic[Item]):
    """One page of a list, newest first. Ask for the next one with `after=last_id` while `has_more`."""

    data: list[Item]
    has_more: bool = Field(description="there are more items after this page")
    last_id: str | None = Field(description="the id of the last item in `data` (null when empty): the next page's "
                                            "`after`")


class DocumentPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    filename: str | None
    kind: Literal["pdf", "codebase"]
    media_type: str | None
    status: DocumentStatus = Field(description="pending (ingest queued or running), ready, or failed (see `error`)")
    sha256: str = Field(description="of the uploaded bytes: the same bytes uploaded again return this document")
    size_bytes: int
    num_sections: int | None = Field(None, exclude=True)  # the row's count; shown as num_pages or num_files
    num_tokens: int | None
    title: str | None
    error: str | None
    created_at: datetime

    @computed_field(description="pages of a PDF (null for a codebase, or before extraction)")
    @property
    def num_pages(self) -> int | None:
        return self.num_sections if self.kind == "pdf" else None

    @computed_field(description="files of a codebase (null for a PDF, or before extraction)")
    @property
    def num_files(self) -> int | None:
        return self.num_sections if self.kind == "codebase" else None

    page_status: dict | None = Field(None, exclude=True)  # the row's {"failed": [...], "scanned": [...]}

    @computed_field(description="pages extraction could not read (1-based; null for a codebase, or before "
                                "extraction): their text is missing from the prompt")
    @property
    def pages_failed(self) -> list[int] | None:
        return list((self.page_status or {}).get("failed", [])) if self.page_status is not None else None

    @computed_field(description="pages without a text layer (scanned images; 1-based; null for a codebase, or "
                                "before extraction): their text is missing unless OCR read it")
    @property
    def pages_scanned(self) -> list[int] | None:
        return list((self.page_status or {}).get("scanned", [])) if self.page_status is not None else None


class DocumentCreated(DocumentPublic):
    ingest_job_id: str = Field(description="the job that extracts the document (the latest one, for an upload that "
                                           "returned an existing document)")


class DocumentList(Page[DocumentPublic]):
    pass


class SummaryCreate(BaseModel):
    style: Style = "brief"
    thinking: bool = Field(False, description="let the model think first (off by default)")
    max_tokens: int | None = Field(None, ge=1, description="output cap; at most the style's cap (brief: 512)")
    over_window: OverWindow = OVER_WINDOW


class QuestionCreate(BaseModel):
    question: str = Field(min_length=1, max_length=20_000)
    thinking: bool = False
    max_tokens: int | None = Field(None, ge=1)
    over_window: OverWindow = OVER_WINDOW


class SummaryParams(BaseModel):
    """A summarize job's parameters, as the job runs them (max_tokens already capped)."""

    style: Style
    thinking: bool
    max_tokens: int
    over_window: OverWindow = "refuse"


class QuestionParams(BaseModel):
    """An answer job's parameters, as the job runs them (max_tokens already capped)."""

    question: str
    thinking: bool
    max_tokens: int
    over_window: OverWindow = "refuse"


class IngestParams(BaseModel):
    """An ingest job has no parameters."""

    model_config = ConfigDict(extra="forbid")


class DigestParams(BaseModel):
    """A digest job's parameters: the digest run it writes (GET /v1/digests/{id}/runs)."""

    run_id: str
    style: Style
    thinking: bool
    max_tokens: int


class JobPartPublic(BaseModel):
    """One part of a summary run in parts (a document over the window): its whole sections and its progress."""

    model_config = ConfigDict(from_attributes=True)

    part: int = Field(validation_alias=AliasChoices("number", "part"), description="1..n in document order")
    span: str = Field(description="the sections it covers, e.g. \"pages 3-17\"")
    first: str = Field(validation_alias=AliasChoices("first_anchor", "first"), description="its first page or file")
    last: str = Field(validation_alias=AliasChoices("last_anchor", "last"), description="its last page or file")
    state: Literal["pending", "running", "done", "stopped"] = Field(description="stopped: its job ended (cancelled, "
                                                                              "failed) while it ran")
    prompt_tokens: int = Field(description="its prompt's tokens, as planned")
    prefill_tokens_done: int | None
    prefill_tokens_total: int | None
    tokens_generated: int | None


class JobPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    kind: JobKind
    document_id: str | None
    state: JobState
    stage: str | None = Field(description="what a running job is doing: extract, count, prefill, generate, "
                                          "combine (the last pass of a summary in parts)")
    progress: float
    prefill_tokens_done: int | None
    prefill_tokens_total: int | None
    tokens_generated: int | None
    attempts: int
    max_attempts: int
    error: str | None
    params: SummaryParams | CorpusQuestionParams | QuestionParams | DigestParams | IngestParams = Field(
        description="by kind: summarize, corpus_answer, answer, digest, ingest")
    result_id: str | None = Field(None, description="set once the job is done (summarize / answer)")
    parts: list[JobPartPublic] | None = Field(None, description="a summary run in parts (`over_window: sections` on "
                                                                "a document over the window): each part's progress; "
                                                                "null otherwise")
    queue_position: int | None = Field(None, description="while queued: 1 + the jobs ahead of it in its queue, "
                                                         "every tenant's (null once running or finished)")
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class JobList(Page[JobPublic]):
    pass


class Citation(BaseModel):
    model_config = ConfigDict(extra="allow")

    anchor: str = Field(description="the page (\"12\") or file (\"src/app.py\") it names")
    status: str = Field(description="verified | unverified | invalid")


class Usage(BaseModel):
    """Tokens of the completion that made a result, as the inference endpoint reported them."""

    model_config = ConfigDict(extra="allow")

    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cached_tokens: int | None = Field(None, description="prompt tokens served from the prefix cache (null: the "
                                                        "endpoint did not say)")
    reasoning_tokens: int | None = None
    request_id: str | None = Field(None, description="the inference request (its X-Request-Id) that made the result")
    attempts: int | None = Field(None, description="inference attempts it took")
    finish_reason: str | None = None


class CoveragePart(BaseModel):
    """One part of a summary made in parts: the whole sections it covered and the usage of its request."""

    part: int = Field(description="1..n in document order")
    span: str = Field(description="e.g. \"pages 13-24\"")
    first: str = Field(description="its first page or file")
    last: str = Field(description="its last page or file")
    usage: Usage


class CoverageCombine(BaseModel):
    usage: Usage = Field(description="the combining pass's request")


class Coverage(BaseModel):
    """What of a document over the window a result was made from (docs/over-window.md): `parts` (a summary of
    every part, then combined) or `selected` (a question over the most relevant whole pages or files that fit)."""

    mode: Literal["parts", "selected"]
    window_tokens: int | None = Field(None, description="the window it was planned for")
    parts: list[CoveragePart] | None = Field(None, description="mode parts: each part, in order")
    combine: CoverageCombine | None = Field(None, description="mode parts: the combining pass")
    included: list[str] | None = Field(None, description="mode selected: the pages or files in the prompt, in order")
    left_out: list[str] | None = Field(None, description="mode selected: the pages or files left out")
    included_spans: str | None = Field(None, description="mode selected: `included` for people, e.g. \"pages 1-3, 7\"")
    left_out_spans: str | None = Field(None, description="mode selected: `left_out` for people")


class DigestCoverageDocument(BaseModel):
    doc: int = Field(description="its number in the digest: `[doc N, …]` citations name it")
    document_id: str
    title: str | None = None
    summary_result_id: str | None = Field(None, description="its summary in the schedule's style")


class DigestCoverageSkipped(BaseModel):
    document_id: str
    reason: str


class DigestCoverage(BaseModel):
    """What a corpus digest was made from (docs/digests-and-webhooks.md): which document each `doc N` is, the
    documents skipped, and whether the prompt held the documents whole or their summaries."""

    mode: Literal["digest"]
    run_id: str = Field(description="the digest run (GET /v1/digests/{id}/runs/{run_id})")
    prompt: Literal["whole", "summaries"] = Field(description="whole: the documents themselves; summaries: theirs "
                                                              "(they did not fit the window together)")
    documents: list[DigestCoverageDocument]
    skipped: list[DigestCoverageSkipped]


class ResultPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    job_id: str
    document_id: str | None
    kind: JobKind
    text: str
    citations: list[Citation]
    usage: Usage
    notice: str | None
    coverage: Coverage | CorpusCoverage | DigestCoverage | None = Field(
        None, discriminator="mode", description="what of the document the result was made from when it was over the "
        "window (null: all of it, in one prompt); mode corpus: the documents a corpus question used and left out")
    created_at: datetime


class ResultList(Page[ResultPublic]):
    pass


class Health(BaseModel):
    status: Literal["ok"]
    database: Literal["ok"]
