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
