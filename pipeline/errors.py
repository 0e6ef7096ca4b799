"""Typed errors of the pipeline. Only api/ (and the workers' job records) turn them into HTTP / reasons."""


class PipelineError(Exception):
    """Base of every error the pipeline raises for bad input or a failed dependency."""


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
