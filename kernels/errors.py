"""Typed errors raised by the kernel wrappers on bad input (shapes, dtypes, devices, block tables)."""


class KernelError(ValueError):
    """Base class: a kernel wrapper refused its input; the message says which argument and why."""


class ShapeError(KernelError):
    """A tensor has the wrong rank, size, dtype or device for the kernel."""


class ConfigError(KernelError):
    """A scalar setting is invalid (ratio not dividing BLOCK_TOKENS, odd rope dim, top-k < 1, ...)."""


def check(cond: bool, msg: str, err: type[KernelError] = ShapeError) -> None:
    """Raise `err(msg)` unless `cond` holds (used by every public wrapper)."""
    if not cond:
        raise err(msg)
