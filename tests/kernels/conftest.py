"""Kernel tests: Triton kernels run under TRITON_INTERPRET=1 on CPU (patched interpreter) or natively on CUDA.

scripts/test (and so CI) runs `TRITON_INTERPRET=1 pytest tests/kernels` on its own. A bare `pytest` on a CPU-only
machine collects these tests too: the CPU fast-path tests run, the Triton ones skip with "run with
TRITON_INTERPRET=1 (scripts/test does)". The variable is not set for them here: triton.jit picks interpreted or
compiled when kernels/ is imported, which in a whole-suite run happens while other packages are collected, and
setting it for the whole run would send every subprocess the tests start through the interpreter too.
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
    pytest.skip("Triton kernels need CUDA; on CPU run with TRITON_INTERPRET=1 (scripts/test does)")


@pytest.fixture
def tdev() -> str:
    return triton_device()


def pytest_collection_modifyitems(config, items):
    """Marks for the kernel tests (their modules are edited elsewhere): a whole model forward through the Triton
    path takes seconds under the interpreter, so it is `slow`."""
    here = os.path.dirname(__file__)
    for item in items:
        if str(item.path).startswith(here + os.sep) and "_on_the_triton_path_" in item.name:
            item.add_marker(pytest.mark.slow)


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
