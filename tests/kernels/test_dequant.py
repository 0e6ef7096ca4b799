"""FP8 / MXFP4 dequantization: Triton vs twin; the twin against hand-written bytes."""

import pytest
import torch

from kernels.dequant import fp4_dequant, fp4_dequant_triton, fp8_dequant, fp8_dequant_triton, naive_fp4_dequant
from kernels.errors import ShapeError


@pytest.mark.parametrize("n,k", [(200, 300), (128, 128), (5, 7)], ids=["200x300", "128x128", "5x7"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
def test_fp8_triton(tdev, n, k, dtype):
    g = torch.Generator().manual_seed(0)
    w = (torch.randn(n, k, generator=g) * 60).to(torch.float8_e4m3fn)
    s = torch.randint(118, 136, (-(-n // 128), -(-k // 128)), generator=g).to(torch.uint8).view(torch.float8_e8m0fnu)
    ref = fp8_dequant(w, s, dtype)
    assert torch.equal(fp8_dequant_triton(w.to(tdev), s.to(tdev), dtype).cpu(), ref)


@pytest.mark.parametrize("n,k", [(37, 96), (16, 32)], ids=["37x96", "16x32"])
def test_fp4_triton(tdev, n, k):
    g = torch.Generator().manual_seed(1)
    p = torch.randint(-128, 128, (n, k // 2), generator=g, dtype=torch.int8)
    s = torch.randint(120, 131, (n, k // 32), generator=g).to(torch.uint8)
    ref = fp4_dequant(p, s, torch.float32)
    assert torch.equal(fp4_dequant_triton(p.to(tdev), s.to(tdev), torch.float32).cpu(), ref)


def test_hand_bytes():
    """0x21 → (0.5, 1.0); 0xF7 → (6, −6); 0x9A → (−1, −0.5)... low nibble is the even column."""
    row = torch.tensor([[0x21, 0xF7, 0x9A, 0x00] + [0] * 12], dtype=torch.uint8).view(torch.int8)
    one, four = torch.full((1, 1), 127, dtype=torch.uint8), torch.full((1, 1), 129, dtype=torch.uint8)
    torch.testing.assert_close(naive_fp4_dequant(row, one, torch.float32)[0, :8],
                               torch.tensor([0.5, 1.0, 6.0, -6.0, -1.0, -0.5, 0.0, 0.0]))
    torch.testing.assert_close(naive_fp4_dequant(row, four, torch.float32)[0, :2], torch.tensor([2.0, 4.0]))
    w = torch.tensor([[1.5, -448.0]]).to(torch.float8_e4m3fn)
    torch.testing.assert_close(fp8_dequant(w, torch.tensor([[0.25]]), torch.float32), torch.tensor([[0.375, -112.0]]))


def test_bad_scales():
    with pytest.raises(ShapeError):
        fp8_dequant(torch.zeros(200, 300).to(torch.float8_e4m3fn), torch.ones(1, 3))
    with pytest.raises(ShapeError):
        fp4_dequant(torch.zeros(4, 16, dtype=torch.int8), torch.ones(4, 2))
