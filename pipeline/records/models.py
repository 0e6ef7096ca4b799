"""SQLAlchemy 2 models: tenants, API keys, documents, jobs, results, idempotency keys, corpora, batches.

`Job.kind` and `Job.params` are open-ended, so every kind of job (ingest, summary, answer) shares one table.
"""

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, Integer, MetaData, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from pipeline.records.types import UTCDateTime, utcnow

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def new_id() -> str:
    return uuid.uuid4().hex


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class DocumentStatus(StrEnum):
    PENDING = "pending"  # uploaded, ingest job queued or running
    READY = "ready"
    FAILED = "failed"


class JobKind(StrEnum):
    INGEST = "ingest"
    SUMMARIZE = "summarize"
    ANSWER = "answer"
    CORPUS_ANSWER = "corpus_answer"  # a question over a corpus (docs/corpus-questions.md)
    DIGEST = "digest"  # a corpus digest (pipeline.records.digests)


class JobState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


FINAL_STATES = (JobState.DONE, JobState.FAILED, JobState.CANCELLED)


class Tenant(Base):
    __tablename__ = "tenants"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ApiKey(Base):
    """An API key, stored as its sha256; `prefix` is the visible part used to find the row."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    prefix: Mapped[str] = mapped_column(String(32), unique=True)
    key_sha256: Mapped[str] = mapped_column(String(64))
    name: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class Document(Base):
    # pages newest first (pipeline.records.pages), and the same bytes uploaded again (dedupe by sha256)
    __tablename__ = "documents"
    __table_args__ = (Index("ix_documents_tenant_page", "tenant_id", "created_at", "id"),
                      Index("ix_documents_tenant_sha256", "tenant_id", "sha256"))

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    filename: Mapped[str | None] = mapped_column(String(500))
    kind: Mapped[str] = mapped_column(String(20))  # pipeline.document.Kind
    media_type: Mapped[str | None] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(20), default=DocumentStatus.PENDING)
    blob_key: Mapped[str] = mapped_column(String(500))
    sha256: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    text_blob_key: Mapped[str | None] = mapped_column(String(500))
    num_sections: Mapped[int | None] = mapped_column(Integer)  # pages of a PDF, files of a codebase
    num_tokens: Mapped[int | None] = mapped_column(Integer)
    title: Mapped[str | None] = mapped_column(String(500))
    error: Mapped[str | None] = mapped_column(Text)
    # when a warm-up request last put the document's prefix into an endpoint's own cache (DeepSeek's API)
    prefix_warmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # the pages extraction could not read or found without a text layer: {"failed": [3], "scanned": [1, 2]}
    page_status: Mapped[dict | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)


class Job(Base):
    """One unit of worker work. The lease (owner + expiry) says which worker runs it and until when."""

    __tablename__ = "jobs"
    __table_args__ = (Index("ix_jobs_state_lease", "state", "lease_expires_at"),
                      Index("ix_jobs_tenant_page", "tenant_id", "created_at", "id"))

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    document_id: Mapped[str | None] = mapped_column(ForeignKey("documents.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(20))  # JobKind
    params: Mapped[dict] = mapped_column(JSON, default=dict)  # style, thinking, max_tokens, question, …
    state: Mapped[str] = mapped_column(String(20), default=JobState.QUEUED)
    stage: Mapped[str | None] = mapped_column(String(40))  # e.g. extract, count, prefill, generate
    progress: Mapped[float] = mapped_column(default=0.0)  # 0..1 within the whole job
    prefill_tokens_done: Mapped[int | None] = mapped_column(Integer)
    prefill_tokens_total: Mapped[int | None] = mapped_column(Integer)
    tokens_generated: Mapped[int | None] = mapped_column(Integer)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=3)
    lease_owner: Mapped[str | None] = mapped_column(String(200))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    request_id: Mapped[str | None] = mapped_column(String(100))  # the inference request, to abort it
    cancel_requested: Mapped[bool] = mapped_column(default=False)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    queued_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)  # last (re-)enqueue
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)


class Result(Base):
    """The output of one job; `job_id` is unique so a redelivered task can never store a second one."""

    __tablename__ = "results"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), unique=True)
    document_id: Mapped[str | None] = mapped_column(ForeignKey("documents.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(20))  # JobKind of the job that made it
    text: Mapped[str] = mapped_column(Text)
    citations: Mapped[list] = mapped_column(JSON, default=list)  # [{anchor, quote?, status: verified|unverified|…}]
    usage: Mapped[dict] = mapped_column(JSON, default=dict)  # prompt_tokens, completion_tokens, cached_tokens, …
    notice: Mapped[str | None] = mapped_column(Text)  # e.g. "random-weight dev checkpoint: text not meaningful"
    # what of the document the result was made from, when not all of it in one prompt (docs/over-window.md):
    # {"mode": "parts", "parts": [{part, span, first, last, …usage}]} or {"mode": "selected", "included": [...], …}
    coverage: Mapped[dict | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class IdempotencyKey(Base):
    """The response to a POST made with an `Idempotency-Key`, kept so that the same key and request within the TTL
    get the same response (pipeline.records.idempotency). Written in the transaction that created the object, so a
    stored response always names an object that was committed with it."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (UniqueConstraint("tenant_id", "key", name="uq_idempotency_keys_tenant_key"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(255))
    fingerprint: Mapped[str] = mapped_column(String(64))  # sha256 of the request: method, path, query, body
    request: Mapped[str] = mapped_column(String(600))  # "POST /v1/…", for the message when a key is reused
    status_code: Mapped[int] = mapped_column(Integer)
    body: Mapped[dict] = mapped_column(JSON)
    location: Mapped[str | None] = mapped_column(String(600))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)


class Corpus(Base):
    """A named, tenant-owned set of documents. A document may be in several; deleting a corpus never deletes them."""

    __tablename__ = "corpora"
    __table_args__ = (UniqueConstraint("tenant_id", "name", name="uq_corpora_tenant_name"),
                      Index("ix_corpora_tenant_page", "tenant_id", "created_at", "id"))

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)


class CorpusDocument(Base):
    """Membership of a document in a corpus; `added_at` is what a digest run's "new since the last run" reads."""

    __tablename__ = "corpus_documents"
    __table_args__ = (Index("ix_corpus_documents_corpus_added", "corpus_id", "added_at", "document_id"),)

    corpus_id: Mapped[str] = mapped_column(ForeignKey("corpora.id", ondelete="CASCADE"), primary_key=True)
    document_id: Mapped[str] = mapped_column(ForeignKey("documents.id", ondelete="CASCADE"), primary_key=True,
                                             index=True)
    added_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class JobPart(Base):
    """One part of a summary run in parts (a document over the window, docs/over-window.md): the whole sections it
    covers, its progress while it runs, and its output once done, so a retried job resumes at the first part that is
    not done instead of starting over."""

    __tablename__ = "job_parts"

    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    number: Mapped[int] = mapped_column(Integer, primary_key=True)  # 1..n in document order
    span: Mapped[str] = mapped_column(String(1100))  # "pages 3-17", "files a.py to z.py"
    first_anchor: Mapped[str] = mapped_column(String(500))
    last_anchor: Mapped[str] = mapped_column(String(500))
    state: Mapped[str] = mapped_column(String(20), default="pending")  # pending | running | done
    prompt_tokens: Mapped[int] = mapped_column(Integer)  # as planned
    prefill_tokens_done: Mapped[int | None] = mapped_column(Integer)
    prefill_tokens_total: Mapped[int | None] = mapped_column(Integer)
    tokens_generated: Mapped[int | None] = mapped_column(Integer)
    request_id: Mapped[str | None] = mapped_column(String(100))  # its inference request, while it runs
    text: Mapped[str | None] = mapped_column(Text)
    usage: Mapped[dict | None] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)


class BatchState(StrEnum):
    """A batch's state: queued (nothing dispatched yet), running, paused (see `paused_reason`: the daily token budget
    or the inference endpoint's 429 / 503 back-off; it resumes by itself), done (every item final), cancelled."""

    QUEUED = "queued"
    RUNNING = "running"
    PAUSED = "paused"
    DONE = "done"
    CANCELLED = "cancelled"


BATCH_FINAL_STATES = (BatchState.DONE, BatchState.CANCELLED)


class Batch(Base):
    """Bulk Q&A: every question about every document, one item each (docs/batches.md). Dispatch advances it through
    short worker tasks; `resume_at` holds a pause (budget or back-off) until then."""

    __tablename__ = "batches"
    __table_args__ = (Index("ix_batches_tenant_page", "tenant_id", "created_at", "id"),
                      Index("ix_batches_state", "state"))

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    corpus_id: Mapped[str | None] = mapped_column(ForeignKey("corpora.id", ondelete="SET NULL"), index=True)
    questions: Mapped[list] = mapped_column(JSON, default=list)
    # documents: one item per (document, question); corpus: one item per question over the corpus
    mode: Mapped[str] = mapped_column(String(20), default="documents", server_default="documents")
    thinking: Mapped[bool] = mapped_column(default=False)
    max_tokens: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(20), default=BatchState.QUEUED)
    paused_reason: Mapped[str | None] = mapped_column(Text)
    resume_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    backoffs: Mapped[int] = mapped_column(Integer, default=0)  # 429 / 503 pauses in a row (the back-off doubles)
    total: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class BatchItem(Base):
    """One (document, question) of a batch. Its answer job (an `answer` Job, created when dispatched) is `job_id`;
    the job's result is copied here once, when the item becomes final."""

    __tablename__ = "batch_items"
    __table_args__ = (UniqueConstraint("batch_id", "position", name="uq_batch_items_batch_position"),
                      Index("ix_batch_items_batch_state", "batch_id", "state", "position"))

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    batch_id: Mapped[str] = mapped_column(ForeignKey("batches.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)  # document-major: all questions of one document together
    document_id: Mapped[str | None] = mapped_column(ForeignKey("documents.id", ondelete="SET NULL"), index=True)
    document_name: Mapped[str | None] = mapped_column(String(500))
    question_index: Mapped[int] = mapped_column(Integer)  # into Batch.questions
    # corpus mode: the selected documents' ids in prompt order, comma-separated (set at dispatch; items go by it)
    set_key: Mapped[str | None] = mapped_column(Text)
    coverage: Mapped[dict | None] = mapped_column(JSON)  # corpus mode: documents used and skipped, from the result
    state: Mapped[str] = mapped_column(String(20), default=JobState.QUEUED)
    job_id: Mapped[str | None] = mapped_column(ForeignKey("jobs.id", ondelete="SET NULL"), unique=True)
    answer: Mapped[str | None] = mapped_column(Text)
    citations: Mapped[list | None] = mapped_column(JSON)
    usage: Mapped[dict | None] = mapped_column(JSON)
    prompt_tokens: Mapped[int | None] = mapped_column(Integer)
    cached_tokens: Mapped[int | None] = mapped_column(Integer)
    completion_tokens: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class SearchRow(Base):
    """One row of the full-text index (pipeline.search, docs/corpus-questions.md): a page or file of a ready document
    (a long one split into several rows: a PostgreSQL tsvector holds at most 1 MB), or one of its summaries. `terms`
    is the text as search terms (pipeline.search.terms). The migration adds what each database searches with, outside
    these models: on PostgreSQL a generated `tsv` tsvector column with a GIN index, on SQLite an FTS5 table
    `search_fts` over `terms` kept in step by triggers. Rows go with their document (and summary) by cascade."""

    __tablename__ = "search_rows"
    __table_args__ = (Index("ix_search_rows_tenant_document", "tenant_id", "document_id"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
                                    autoincrement=True)  # SQLite: the rowid the FTS5 table points at
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    document_id: Mapped[str] = mapped_column(ForeignKey("documents.id", ondelete="CASCADE"))
    source: Mapped[str] = mapped_column(String(20))  # text (a page or file) | summary
    anchor: Mapped[str | None] = mapped_column(String(500))  # the page or file; None for a summary
    result_id: Mapped[str | None] = mapped_column(ForeignKey("results.id", ondelete="CASCADE"), index=True)
    num_terms: Mapped[int] = mapped_column(Integer)
    terms: Mapped[str] = mapped_column(Text)


class Webhook(Base):
    """A tenant's endpoint for event notifications (docs/digests-and-webhooks.md). `secret` (whsec_…) signs every
    delivery per the Standard Webhooks specification; it is shown once, when the webhook is made."""

    __tablename__ = "webhooks"
    __table_args__ = (Index("ix_webhooks_tenant_page", "tenant_id", "created_at", "id"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    url: Mapped[str] = mapped_column(String(2000))
    events: Mapped[list] = mapped_column(JSON, default=list)  # job.done, job.failed, batch.completed, …
    secret: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class WebhookDelivery(Base):
    """One event for one webhook: its payload, its `webhook-id` (kept across retries) and where its retries stand.
    `event_key` names the event (e.g. job.done:<job id>), so an event emitted twice is delivered once; beat polls
    `next_attempt_at` (pipeline.records.webhooks)."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (UniqueConstraint("webhook_id", "event_key", name="uq_webhook_deliveries_webhook_event"),
                      Index("ix_webhook_deliveries_due", "state", "next_attempt_at"),
                      Index("ix_webhook_deliveries_webhook_page", "webhook_id", "created_at", "id"))

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    webhook_id: Mapped[str] = mapped_column(ForeignKey("webhooks.id", ondelete="CASCADE"))
    event: Mapped[str] = mapped_column(String(40))
    event_key: Mapped[str] = mapped_column(String(200))
    message_id: Mapped[str] = mapped_column(String(64))  # the `webhook-id` header, the same on every attempt
    payload: Mapped[dict] = mapped_column(JSON)
    state: Mapped[str] = mapped_column(String(20), default="pending")  # pending | delivered | failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_status: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class WebhookAttempt(Base):
    """One try at sending a delivery, recorded when it starts (a worker lost mid-send leaves it without an outcome)."""

    __tablename__ = "webhook_attempts"
    __table_args__ = (UniqueConstraint("delivery_id", "number", name="uq_webhook_attempts_delivery_number"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    delivery_id: Mapped[str] = mapped_column(ForeignKey("webhook_deliveries.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    status_code: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)


class DigestSchedule(Base):
    """A corpus's digest schedule: a cron expression in an IANA time zone, the summaries' style, paused or not.
    `next_run_at` is the next fire time not yet handed to a run (pipeline.records.digests)."""

    __tablename__ = "digest_schedules"
    __table_args__ = (Index("ix_digest_schedules_tenant_page", "tenant_id", "created_at", "id"),
                      Index("ix_digest_schedules_due", "paused", "next_run_at"))

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    corpus_id: Mapped[str] = mapped_column(ForeignKey("corpora.id", ondelete="CASCADE"), index=True)
    cron: Mapped[str] = mapped_column(String(120))
    timezone: Mapped[str] = mapped_column(String(64))
    style: Mapped[str] = mapped_column(String(20))
    paused: Mapped[bool] = mapped_column(default=False)
    next_run_at: Mapped[datetime] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)


class DigestRun(Base):
    """One digest of a schedule: the period it stands for (unique per schedule, so a period makes one run however
    many schedulers see it), the documents it covers (frozen when made), and how far it got."""

    __tablename__ = "digest_runs"
    __table_args__ = (UniqueConstraint("schedule_id", "period_start", name="uq_digest_runs_schedule_period"),
                      Index("ix_digest_runs_schedule_page", "schedule_id", "created_at", "id"),
                      Index("ix_digest_runs_state", "state"))

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    schedule_id: Mapped[str] = mapped_column(ForeignKey("digest_schedules.id", ondelete="CASCADE"))
    trigger: Mapped[str] = mapped_column(String(20))  # schedule | manual
    period_start: Mapped[datetime] = mapped_column(UTCDateTime())  # the first fire time it covers (manual: asked at)
    period_end: Mapped[datetime] = mapped_column(UTCDateTime())  # the last one (after downtime: the whole gap)
    added_after: Mapped[datetime | None] = mapped_column(UTCDateTime())  # the previous successful run's cut-off
    added_until: Mapped[datetime] = mapped_column(UTCDateTime())
    document_ids: Mapped[list] = mapped_column(JSON, default=list)  # what it covers, as frozen when it was made
    summary_jobs: Mapped[dict] = mapped_column(JSON, default=dict)  # document id → the summary job it waits on
    documents: Mapped[list] = mapped_column(JSON, default=list)  # [{doc, document_id, title, summary_result_id}]
    skipped: Mapped[list] = mapped_column(JSON, default=list)  # [{document_id, reason}]
    state: Mapped[str] = mapped_column(String(20), default=JobState.QUEUED)  # JobState
    stage: Mapped[str | None] = mapped_column(String(20))  # summaries | digest
    mode: Mapped[str | None] = mapped_column(String(20))  # whole | summaries: what the digest prompt held
    job_id: Mapped[str | None] = mapped_column(ForeignKey("jobs.id", ondelete="SET NULL"))
    result_id: Mapped[str | None] = mapped_column(ForeignKey("results.id", ondelete="SET NULL"))
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class PageImage(Base):
    """A rendered page image (what a citation link opens) cached in the blob store: `cache_key` names the page, the
    quote highlighted, the size and the rendering's version (api.web.page_image; docs/web.md)."""

    __tablename__ = "page_images"
    __table_args__ = (UniqueConstraint("document_id", "cache_key", name="uq_page_images_document_key"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    document_id: Mapped[str] = mapped_column(ForeignKey("documents.id", ondelete="CASCADE"))
    cache_key: Mapped[str] = mapped_column(String(64))
    blob_key: Mapped[str] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
