"""The engine's bookkeeping and the configs load without torch or triton (the block manager and configs are plain
Python; kernels' package names load their submodules lazily), so they stay cheap to import and to test."""

import subprocess
import sys

import pytest

LIGHT = ["inference.engine.block_manager", "inference.model.config", "inference.text.chat", "inference.text.tokenizer",
         "kernels.constants"]


@pytest.mark.parametrize("module", LIGHT)
def test_module_imports_without_torch_or_triton(module):
    code = f"import sys, {module}; print(sorted(m for m in ('torch', 'triton') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_kernels_names_resolve_to_their_submodules():
    import kernels
    from kernels.constants import BLOCK_TOKENS
    from kernels.mhc import hc_pre

    assert kernels.hc_pre is hc_pre and kernels.BLOCK_TOKENS == BLOCK_TOKENS == 128
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        kernels.nope  # noqa: B018
