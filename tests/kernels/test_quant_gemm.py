"""Quantized GEMMs (kernels.quant_gemm): the Triton kernels equal their plain-torch twins on odd shapes, partial
tiles and every scale layout; the twins equal dequantize-then-matmul per expert; FP8 activations match the
reference-numerics rounding."""

import pytest
import torch

from inference.checkpoint.quant import quantize_fp4, quantize_fp8_block
from inference.model.numerics import _fake_quant, _round_e4m3
from kernels.errors import ShapeError
from kernels.quant_gemm import (
    act_quant_fp8_torch,
    dequant_weights,
    quant_grouped,
    quant_grouped_torch,
    quant_grouped_triton,
    quant_linear,
    quant_linear_torch,
    quant_linear_triton,
)
from tests.kernels.conftest import assert_close


def _weights(fmt: str, n: int, k: int, g: torch.Generator, layout: str, lead: int = 0):
    """Random weights in `fmt` with scales as float8_e8m0fnu ("e8m0"), raw bytes ("uint8") or fp32 ("float")."""
    def one():
        w = torch.randn(n, k, generator=g) * torch.rand(n, 1, generator=g) * 3  # rows of different ranges
        q, s = quantize_fp4(w) if fmt == "fp4" else quantize_fp8_block(w)
        if layout == "uint8":
            s = s.view(torch.uint8)
        elif layout == "float":
            s = torch.ldexp(torch.ones(s.shape), s.view(torch.uint8).int() - 127) * 0.75  # not a power of two
        return q, s
    if not lead:
        return one()
    pairs = [one() for _ in range(lead)]
    return torch.stack([p[0] for p in pairs]), torch.stack([p[1] for p in pairs])


LINEAR_CASES = [  # (fmt, M, N, K, scale layout, act_fp8, dtype)
    ("fp8", 37, 200, 300, "e8m0", False, torch.float32),   # partial tiles in M, N and K; partial scale blocks
    ("fp8", 1, 130, 257, "uint8", True, torch.float32),    # one decode row, K one past two blocks
    ("fp8", 70, 64, 128, "float", False, torch.bfloat16),
    ("fp4", 37, 96, 320, "e8m0", True, torch.float32),     # K = 2.5 tiles of 128
    ("fp4", 5, 33, 64, "float", False, torch.float32),     # K shorter than a tile
    ("fp4", 80, 130, 96, "uint8", False, torch.bfloat16),
]


LINEAR_IDS = [f"{c[0]}-{c[1]}x{c[2]}x{c[3]}-{c[4]}-act{int(c[5])}-{str(c[6])[6:]}" for c in LINEAR_CASES]


@pytest.mark.parametrize("fmt,m,n,k,layout,act,dtype", LINEAR_CASES, ids=LINEAR_IDS)
def test_linear_triton_equals_twin(tdev, fmt, m, n, k, layout, act, dtype):
    g = torch.Generator().manual_seed(m * n + k)
    w, s = _weights(fmt, n, k, g, layout)
    x = (torch.randn(m, k, generator=g) * 2).to(dtype)
    ref = quant_linear_torch(x, w, s, fmt, act)
    out = quant_linear_triton(x.to(tdev), w.to(tdev), s.to(tdev), fmt, act).cpu()
    assert out.dtype == dtype
    assert_close(ref, out, 1e-5 if dtype == torch.float32 else 8e-3, what=f"{fmt} linear")


GROUPED_CASES = [  # (fmt, rows per expert, N, K, layout, act, block_m)
    ("fp4", [10, 0, 30, 1, 19], 72, 160, "e8m0", False, 16),   # an empty expert, tiles crossing no expert boundary
    ("fp4", [3, 17, 0, 0], 40, 64, "float", True, None),
    ("fp8", [5, 0, 21], 136, 200, "uint8", True, 16),
    ("fp8", [0, 9], 64, 128, "e8m0", False, None),
]


@pytest.mark.parametrize("fmt,counts,n,k,layout,act,bm", GROUPED_CASES,
                         ids=[f"{c[0]}-{'-'.join(map(str, c[1]))}-{c[4]}-act{int(c[5])}" for c in GROUPED_CASES])
def test_grouped_triton_equals_twin(tdev, fmt, counts, n, k, layout, act, bm):
    g = torch.Generator().manual_seed(sum(counts) + n)
    w, s = _weights(fmt, n, k, g, layout, lead=len(counts))
    offsets = torch.tensor([0] + counts).cumsum(0)
    x = torch.randn(int(offsets[-1]), k, generator=g)
    ref = quant_grouped_torch(x, w, s, offsets, fmt, act)
    out = quant_grouped_triton(x.to(tdev), w.to(tdev), s.to(tdev), offsets.to(tdev), fmt, act, block_m=bm).cpu()
    assert_close(ref, out, 1e-5, what=f"{fmt} grouped")


@pytest.mark.parametrize("fmt", ["fp8", "fp4"])
def test_grouped_twin_is_dequantize_then_matmul_per_expert(fmt):
    g = torch.Generator().manual_seed(7)
    counts = [4, 0, 9, 2]
    w, s = _weights(fmt, 48, 128, g, "e8m0", lead=4)
    offsets = torch.tensor([0] + counts).cumsum(0)
    x = torch.randn(15, 128, generator=g)
    out = quant_grouped(x, w, s, offsets, fmt)
    ref = torch.cat([x[offsets[e]:offsets[e + 1]] @ dequant_weights(w[e], s[e], fmt, torch.float32).T
                     for e in range(4)])
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(quant_linear(x, w[2], s[2], fmt), x @ dequant_weights(w[2], s[2], fmt, x.dtype).T)


def test_act_quant_is_the_reference_rounding():
    """Blocks of 128 along K (a partial last block gets its own scale), ue8m0 scales, amax floored at 1e-4."""
    g = torch.Generator().manual_seed(3)
    x = torch.randn(6, 300, generator=g) * torch.logspace(-6, 3, 6)[:, None]
    ref = _fake_quant(x, 128, 448.0, 1e-4, _round_e4m3)
    assert torch.equal(act_quant_fp8_torch(x), ref)
    assert torch.equal(act_quant_fp8_torch(ref), ref)  # idempotent


def test_bad_inputs_name_the_problem():
    g = torch.Generator().manual_seed(0)
    w, s = _weights("fp8", 64, 128, g, "e8m0")
    with pytest.raises(ShapeError, match="K=100"):
        quant_linear(torch.zeros(2, 100), w, s, "fp8")
    with pytest.raises(ShapeError, match="needs scales"):
        quant_linear(torch.zeros(2, 128), w, s[:, :0], "fp8")
    with pytest.raises(ShapeError, match="fmt"):
        quant_linear(torch.zeros(2, 128), w, s, "int4")
