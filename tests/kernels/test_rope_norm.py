"""RMSNorm + RoPE and inverse RoPE: Triton vs twin; the twin vs REF's complex-number RoPE; inverse undoes rope."""

import pytest
import torch

from kernels.layout import rope_tables
from kernels.rope_norm import (
    inverse_rope,
    inverse_rope_triton,
    naive_inverse_rope,
    naive_rmsnorm_rope,
    naive_rope,
    rmsnorm_rope,
    rmsnorm_rope_triton,
    rope_triton,
)
from tests.kernels.conftest import assert_close

COS, SIN = rope_tables(16, 300, theta=160000.0)
POS = torch.tensor([0, 1, 127, 128, 299], dtype=torch.int32)


@pytest.mark.parametrize("shape", [(5, 3, 40), (5, 40), (5, 70, 24)], ids=["q-H3-D40", "kv-D40", "H70-D24"])
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
def test_triton_matches_naive(tdev, shape, weighted):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(*shape, generator=g)
    w = torch.rand(shape[-1], generator=g) + 0.5 if weighted else None
    mv = lambda t: None if t is None else t.to(tdev)
    ref = naive_rmsnorm_rope(x, w, COS, SIN, POS, 16)
    assert_close(ref, rmsnorm_rope_triton(mv(x), mv(w), COS.to(tdev), SIN.to(tdev), POS.to(tdev), 16), 1e-6, 1e-5)
    assert_close(naive_rope(x, COS, SIN, POS, 16), rope_triton(mv(x), COS.to(tdev), SIN.to(tdev), POS.to(tdev), 16),
                 1e-6, 1e-5)
    ref_inv = naive_inverse_rope(x, COS, SIN, POS, 16)
    assert_close(ref_inv, inverse_rope_triton(mv(x), COS.to(tdev), SIN.to(tdev), POS.to(tdev), 16), 1e-6, 1e-5)


@pytest.mark.parametrize("dtype,tol", [(torch.float16, 1e-3), (torch.bfloat16, 8e-3)], ids=["fp16", "bf16"])
def test_triton_half_precision(tdev, dtype, tol):
    x = torch.randn(5, 4, 64, generator=torch.Generator().manual_seed(1)).to(dtype)
    ref = naive_rmsnorm_rope(x, None, COS, SIN, POS, 16)
    out = rmsnorm_rope_triton(x.to(tdev), None, COS.to(tdev), SIN.to(tdev), POS.to(tdev), 16)
    assert out.dtype == dtype
    assert_close(ref, out, tol)


def test_rope_matches_complex_form_and_inverse_undoes_it():
    x = torch.randn(5, 2, 40, generator=torch.Generator().manual_seed(2))
    y = rmsnorm_rope(x, None, COS, SIN, POS, 16)
    xn = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6)
    freqs = torch.polar(torch.ones_like(COS), torch.atan2(SIN, COS))[POS.long()][:, None]   # REF freqs_cis
    rot = torch.view_as_real(torch.view_as_complex(xn[..., -16:].unflatten(-1, (-1, 2)).contiguous()) * freqs)
    torch.testing.assert_close(y, torch.cat([xn[..., :-16], rot.flatten(-2)], -1), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(inverse_rope(y, COS, SIN, POS, 16), xn, rtol=1e-5, atol=1e-6)
    assert torch.equal(y[..., :24], xn[..., :24].to(y.dtype))                 # nope channels untouched by RoPE


def test_triton_strided_view(tdev):
    """A head-strided view (e.g. q sliced out of a wider projection) is read and written through its strides."""
    base = torch.randn(5, 3, 48, generator=torch.Generator().manual_seed(3))
    x = base[:, :, 8:]                                                          # [5, 3, 40], stride(1) = 48
    ref = naive_rmsnorm_rope(x.contiguous(), None, COS, SIN, POS, 16)
    out = rmsnorm_rope_triton(x.to(tdev), None, COS.to(tdev), SIN.to(tdev), POS.to(tdev), 16)
    assert_close(ref, out, 1e-6, 1e-5)
