"""Kernel tests: Triton kernels run under TRITON_INTERPRET=1 on CPU (patched interpreter) or natively on CUDA.

CI runs `TRITON_INTERPRET=1 pytest tests/kernels` on its own; in a plain `pytest` run (no interpreter, no GPU)
the Triton tests skip with a reason, while the CPU fast-path tests always run.
"""

import os

import pytest
import torch

INTERPRET = os.environ.get("TRITON_INTERPRET") == "1"
if INTERPRET:
    from tests.kernels import interp_patch

    interp_patch.apply()


def triton_device() -> str:
    """Device the Triton kernels run on here, or skip (never in a CI kernel run, which sets TRITON_INTERPRET=1)."""
    import triton

    if torch.cuda.is_available():
        return "cuda"
    if INTERPRET and triton.knobs.runtime.interpret:
        return "cpu"
    if os.environ.get("CI") == "true" and INTERPRET:
        pytest.fail("TRITON_INTERPRET=1 set but the interpreter is not active")
    pytest.skip("Triton kernels need CUDA or TRITON_INTERPRET=1 (CI runs tests/kernels with it)")


@pytest.fixture
def tdev() -> str:
    return triton_device()


def assert_close(ref: torch.Tensor, out: torch.Tensor, ratio: float, atol: float = 0.0, what: str = "") -> None:
    """FLA-style check: RMS(out - ref) / RMS(ref) <= ratio, or max abs error <= atol."""
    ref, out = ref.double().cpu(), out.double().cpu()
    assert ref.shape == out.shape, f"{what}: shape {tuple(out.shape)} != {tuple(ref.shape)}"
    assert torch.isfinite(out).all(), f"{what}: non-finite output"
    err = (out - ref).abs().max().item()
    if atol and err <= atol:
        return
    rms = (out - ref).pow(2).mean().sqrt().item()
    base = ref.pow(2).mean().sqrt().item()
    assert rms <= ratio * max(base, 1e-12), f"{what}: rms err {rms:.3e} vs ref rms {base:.3e} (max abs {err:.3e})"
