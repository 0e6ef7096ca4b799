"""Typed errors of the pipeline. Only api/ (and the workers' job records) turn them into HTTP / reasons."""


class PipelineError(Exception):
    """Base of every error the pipeline raises for bad input or a failed dependency."""


class SettingsError(Exception):
    """A `WHOLEDOC_*` variable is empty or malformed; the message names each one and the form it expects.

    Not a PipelineError: it stops a process at start, it is never an HTTP answer."""


class IngestError(PipelineError):
    """A document could not be turned into text; the message says why, for a person."""


class StorageError(PipelineError):
    """The blob store failed or holds something other than what was asked for."""


class PromptError(PipelineError):
    """A prompt could not be built (e.g. the document does not fit the model's window)."""


class InferenceError(PipelineError):
    """The inference endpoint failed or refused a request."""


class BlobNotFound(StorageError):
    """No blob is stored under the key asked for."""


class IntegrityError(StorageError):
    """A stored blob's bytes no longer hash to the sha256 its key names (tampered or truncated)."""


class BlobTooLarge(StorageError):
    """An upload went over the byte limit; nothing was kept."""


class InvalidBlobKey(StorageError):
    """A tenant id, owner id or blob key is malformed (and could escape its prefix)."""


class UnsafeArchive(IngestError):
    """An archive is hostile or over a limit (zip bomb, too many entries, corrupt); nothing was written outside."""


class CodebaseTooLarge(IngestError):
    """A codebase is over the total-size or file-count cap; the message names the cap."""


class EmptyCodebase(IngestError):
    """Packing found no text file to include; the message says what was skipped and why."""


class UnsupportedFormat(IngestError):
    """The input is neither a PDF, an archive (zip, tar, tar.gz) nor a directory."""


class EncryptedPdf(IngestError):
    """The PDF is encrypted: no password was given, or the one given is wrong."""


class CorruptPdf(IngestError):
    """The file is not a readable PDF (not a PDF at all, broken beyond repair, or no page could be read)."""


class PdfTooLarge(IngestError):
    """The PDF is over the page-count or extracted-text cap; the message names the cap."""


class NoTextLayer(IngestError):
    """No page yielded text (scanned without OCR, empty, garbled); the message counts the pages by cause."""


class ExtractionLimit(IngestError):
    """Isolated extraction stopped; `where` is the unit being processed then (a page number, or a file path)."""

    def __init__(self, message: str, *, where: int | str | None = None):
        super().__init__(message)
        self.where = where

    @property
    def page(self) -> int | None:
        return self.where if isinstance(self.where, int) else None


class ExtractionTimeout(ExtractionLimit):
    """Extraction ran past its wall-clock limit (in total, or on one page)."""


class ExtractionResourceLimit(ExtractionLimit):
    """Extraction needed more memory (or text) than its limit allows."""


class ExtractionCrashed(ExtractionLimit):
    """The extraction process died (a signal, or exited) without a result."""


class RecordError(PipelineError):
    """A record operation was refused (see the subclasses)."""


class NotFound(RecordError):
    """No such object for this tenant (another tenant's object is 'not found' too, never 'forbidden')."""


class Conflict(RecordError):
    """The object is in a state that does not allow the operation (e.g. summarizing a document not yet ready)."""


class IdempotencyKeyReused(Conflict):
    """An Idempotency-Key was sent again with a different request (another route, parameters or body)."""


class InvalidCursor(RecordError):
    """A list's `after` names no object of this tenant in that list (unknown, another tenant's, or deleted)."""


class LeaseLost(RecordError):
    """This worker no longer holds the job's lease (expired and taken over, cancelled, or finished)."""


class DocumentTooLong(PromptError):
    """The prompt plus the output cap exceeds the model's window; carries both counts so a person can act."""

    def __init__(self, message: str, *, prompt_tokens: int, window_tokens: int, max_output_tokens: int = 0):
        super().__init__(message)
        self.prompt_tokens = prompt_tokens
        self.window_tokens = window_tokens
        self.max_output_tokens = max_output_tokens


class OverWindow(DocumentTooLong):
    """A summary or question was asked of a document over the window without `over_window: "sections"`: the message
    gives the document's tokens, what the request needs with its answer, the window, and the way out
    (pipeline/prompts/window.py)."""

    def __init__(self, message: str, *, document_tokens: int, needed_tokens: int, window_tokens: int):
        super().__init__(message, prompt_tokens=document_tokens, window_tokens=window_tokens,
                         max_output_tokens=max(0, needed_tokens - document_tokens))
        self.document_tokens = document_tokens
        self.needed_tokens = needed_tokens


class SectionTooLong(DocumentTooLong):
    """Fallback planning found one section (page / file) that alone does not fit the window; names it."""

    def __init__(self, message: str, *, anchor: str, **counts: int):
        super().__init__(message, **counts)
        self.anchor = anchor


class RateLimited(InferenceError):
    """The endpoint kept answering 429 after every retry; `retry_after` is its last hint in seconds (or None)."""

    def __init__(self, message: str, *, retry_after: float | None = None, attempts: int = 0):
        super().__init__(message)
        self.retry_after = retry_after
        self.attempts = attempts


class EndpointUnavailable(InferenceError):
    """5xx, timeouts or connection failures persisted after every retry; `status` is the last HTTP status, if any."""

    def __init__(self, message: str, *, status: int | None = None, attempts: int = 0):
        super().__init__(message)
        self.status = status
        self.attempts = attempts


class RequestCancelled(InferenceError):
    """The caller cancelled the request; the server-side request was aborted where the server supports it."""


class ContextWindowExceeded(InferenceError):
    """The endpoint refused the prompt as longer than its context window (HTTP 400 naming the context length);
    the counts are set when the server's message states them (vLLM does)."""

    def __init__(self, message: str, *, window_tokens: int | None = None, requested_tokens: int | None = None):
        super().__init__(message)
        self.window_tokens = window_tokens
        self.requested_tokens = requested_tokens


class RequestRejected(InferenceError):
    """The endpoint refused the request (4xx other than 429): bad key, unknown model, malformed request."""

    def __init__(self, message: str, *, status: int):
        super().__init__(message)
        self.status = status


class StreamInterrupted(InferenceError):
    """The stream broke after text was already handed to the caller; `partial` is what was delivered."""

    def __init__(self, message: str, *, partial: str):
        super().__init__(message)
        self.partial = partial


class Cancelled(LeaseLost):
    """The job was cancelled; the worker stops at its next check."""


class StorageUnavailable(StorageError):
    """The blob store could not be reached (connection refused, timeout); worth retrying later."""


class StorageFull(StorageError):
    """The blob store's disk is full (ENOSPC, EDQUOT): nothing was kept; space must be freed first."""
