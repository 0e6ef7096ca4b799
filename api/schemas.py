"""Request and response bodies (XCreate / XPublic, as the FastAPI template names them)."""

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from pipeline.prompts.styles import STYLES


class ErrorBody(BaseModel):
    error: str = Field(description="machine-readable error type, e.g. not_found, too_large")
    detail: str = Field(description="what went wrong, for a person")


class DocumentPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    filename: str | None
    kind: str = Field(description="pdf | codebase")
    media_type: str | None
    status: str = Field(description="pending | ready | failed")
    sha256: str
    size_bytes: int
    num_sections: int | None = Field(description="pages of a PDF, files of a codebase")
    num_tokens: int | None
    title: str | None
    error: str | None
    created_at: datetime


class DocumentCreated(DocumentPublic):
    ingest_job_id: str


class DocumentList(BaseModel):
    data: list[DocumentPublic]


class SummaryCreate(BaseModel):
    style: Literal[tuple(STYLES)] = "brief"  # type: ignore[valid-type]
    thinking: bool = Field(False, description="let the model think first (off by default)")
    max_tokens: int | None = Field(None, ge=1, description="output cap; at most the style's cap (brief: 512)")


class QuestionCreate(BaseModel):
    question: str = Field(min_length=1, max_length=20_000)
    thinking: bool = False
    max_tokens: int | None = Field(None, ge=1)


class JobPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    kind: str = Field(description="ingest | summarize | answer")
    document_id: str | None
    state: str = Field(description="queued | running | done | failed | cancelled")
    stage: str | None
    progress: float
    prefill_tokens_done: int | None
    prefill_tokens_total: int | None
    tokens_generated: int | None
    attempts: int
    max_attempts: int
    error: str | None
    params: dict
    result_id: str | None = Field(None, description="set once the job is done (summarize / answer)")
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class JobList(BaseModel):
    data: list[JobPublic]


class Citation(BaseModel):
    model_config = ConfigDict(extra="allow")

    anchor: str
    status: str = Field(description="verified | unverified | invalid")


class ResultPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    job_id: str
    document_id: str | None
    kind: str
    text: str
    citations: list[Citation]
    usage: dict = Field(description="prompt_tokens, completion_tokens, cached_tokens, …")
    notice: str | None
    created_at: datetime


class Health(BaseModel):
    status: Literal["ok"]
    database: Literal["ok"]
