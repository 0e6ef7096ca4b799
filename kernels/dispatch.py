"""The one switch between a kernel family's Triton launch and its torch path, read by every dispatcher in kernels/
(and by inference.model.attention_ops for the pieces whose torch path lives in the model).

CUDA tensors run the Triton kernels; CPU tensors run the vectorized torch paths. Inside `with force_triton():` CPU
tensors run the Triton kernels too, which works only under the Triton interpreter (TRITON_INTERPRET=1): the kernel
tests use it to drive the model's Triton path without a GPU. Nothing is read from the environment here.
"""

from collections.abc import Iterator
from contextlib import contextmanager

import torch

_forced = False


def use_triton(x: torch.Tensor) -> bool:
    """True for a CUDA tensor, or for any tensor inside `force_triton()`."""
    return x.is_cuda or _forced


@contextmanager
def force_triton(on: bool = True) -> Iterator[None]:
    """Within the block, dispatchers pick Triton for CPU tensors too (on=False: back to the device rule).
    Process-wide, not per thread; the previous setting comes back on exit."""
    global _forced
    prev, _forced = _forced, on
    try:
        yield
    finally:
        _forced = prev


__all__ = ["force_triton", "use_triton"]
