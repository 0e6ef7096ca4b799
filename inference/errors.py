"""Typed errors of the inference package: bad configs, bad checkpoints, bad requests to the model."""


class InferenceModelError(Exception):
    """Base of every error the model code raises for bad input a person can fix."""


class ConfigError(InferenceModelError):
    """A model config is malformed or describes something this engine cannot run."""


class CheckpointError(InferenceModelError):
    """A checkpoint directory is missing files or tensors, or holds tensors of the wrong shape."""


class InputError(InferenceModelError):
    """Token ids or positions handed to the model are out of range or inconsistent with its state."""


class EngineError(InferenceModelError):
    """A request the engine (inference.engine) refuses or cannot serve."""


class PromptTooLong(EngineError):
    """Prompt plus max_tokens exceed the engine's context window; refused before any work."""

    def __init__(self, prompt_tokens: int, max_tokens: int, max_model_len: int):
        super().__init__(f"prompt of {prompt_tokens} tokens plus max_tokens {max_tokens} = "
                         f"{prompt_tokens + max_tokens} exceeds the context window of {max_model_len} tokens")
        self.prompt_tokens, self.max_tokens, self.max_model_len = prompt_tokens, max_tokens, max_model_len


class QueueFull(EngineError):
    """The bounded waiting queue is full (admission control); retry after retry_after_s seconds."""

    def __init__(self, num_waiting: int, retry_after_s: float):
        super().__init__(f"{num_waiting} requests are already waiting; retry in {retry_after_s:.1f} s")
        self.num_waiting, self.retry_after_s = num_waiting, retry_after_s


class DuplicateRequest(EngineError):
    """A request with this id is still in the engine."""
