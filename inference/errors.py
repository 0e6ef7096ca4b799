"""Typed errors of the inference package: bad configs, bad checkpoints, bad requests to the model."""


class InferenceModelError(Exception):
    """Base of every error the model code raises for bad input a person can fix."""


class ConfigError(InferenceModelError):
    """A model config is malformed or describes something this engine cannot run."""


class CheckpointError(InferenceModelError):
    """A checkpoint directory is missing files or tensors, or holds tensors of the wrong shape."""


class InputError(InferenceModelError):
    """Token ids or positions handed to the model are out of range or inconsistent with its state."""
