"""Weight dequantization: block-FP8 (e4m3, one ue8m0 scale per 128×128 block) and MXFP4 (e2m1 packed two per
byte, low nibble = even column, one ue8m0 scale per 32 columns) → bf16 / fp32 (docs/model.md#release-weight-formats).
Scales may be float8_e8m0fnu, raw uint8 exponent bytes (2^(b−127)) or already-float.
"""

import torch
import triton
import triton.language as tl

from .dispatch import use_triton
from .errors import ShapeError, check

FP8_BLOCK, FP4_BLOCK = 128, 32  # weight-quant scale blocks (FP8: 128×128, FP4: 1×32); not layout.BLOCK_TOKENS
FP4_LUT = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0)

##### Reference #####


def scale_to_float(scale: torch.Tensor) -> torch.Tensor:
    """ue8m0 scales (float8_e8m0fnu or uint8 bytes) → fp32 powers of two; float scales pass through."""
    if scale.dtype in (torch.float8_e8m0fnu, torch.uint8):
        e = scale.contiguous().view(torch.uint8).to(torch.int32) - 127
        return torch.ldexp(torch.ones(e.shape, device=e.device), e)
    check(scale.is_floating_point(), f"scale dtype {scale.dtype} is not ue8m0, uint8 or float")
    return scale.float()


def _check_fp8(weight, scale, lead: bool = False):
    """`lead`: leading (expert) dims allowed, the same on weight and scale (the torch twin); the kernels take 2-D."""
    ok_dim = weight.dim() >= 2 if lead else weight.dim() == 2
    check(ok_dim and weight.dtype == torch.float8_e4m3fn,
          f"FP8 weight must be {'[..., N, K]' if lead else '2-D'} e4m3, got {weight.dtype} {tuple(weight.shape)}")
    grid = (*weight.shape[:-2], -(-weight.shape[-2] // FP8_BLOCK), -(-weight.shape[-1] // FP8_BLOCK))
    check(tuple(scale.shape) == grid, f"FP8 weight {tuple(weight.shape)} needs scales {grid}, got {tuple(scale.shape)}")


def _check_fp4(packed, scale, lead: bool = False):
    ok_dim = packed.dim() >= 2 if lead else packed.dim() == 2
    check(ok_dim and packed.dtype in (torch.int8, torch.uint8),
          f"FP4 weight must be {'[..., N, K/2]' if lead else '2-D'} int8 bytes")
    n, k = packed.shape[-2], packed.shape[-1] * 2
    grid = (*packed.shape[:-2], n, k // FP4_BLOCK)
    check(k % FP4_BLOCK == 0 and tuple(scale.shape) == grid,
          f"FP4 weight of logical shape {(*packed.shape[:-2], n, k)} needs scales {grid}, got {tuple(scale.shape)}")


def naive_fp8_dequant(weight, scale, dtype=torch.bfloat16):
    """weight e4m3 `[..., N, K]`, scale `[..., ceil(N/128), ceil(K/128)]` → dtype `[..., N, K]` (any leading expert
    dims, vectorized)."""
    _check_fp8(weight, scale, lead=True)
    n, k = weight.shape[-2:]
    s = scale_to_float(scale).repeat_interleave(FP8_BLOCK, -2).repeat_interleave(FP8_BLOCK, -1)[..., :n, :k]
    return (weight.float() * s).to(dtype)


def naive_fp4_dequant(packed, scale, dtype=torch.bfloat16):
    """packed int8 `[..., N, K/2]` (low nibble first), scale `[..., N, K/32]` → dtype `[..., N, K]` (any leading
    expert dims)."""
    _check_fp4(packed, scale, lead=True)
    u = packed.view(torch.uint8).long()
    codes = torch.stack([u & 0xF, u >> 4], -1).flatten(-2)                        # [..., N, K]
    mag = torch.tensor(FP4_LUT, device=packed.device)[codes & 7]
    val = torch.where(codes >= 8, -mag, mag)
    return (val * scale_to_float(scale).repeat_interleave(FP4_BLOCK, -1)).to(dtype)


fp8_dequant_torch, fp4_dequant_torch = naive_fp8_dequant, naive_fp4_dequant

##### Triton kernels #####


@triton.jit
def _fp8_dequant_kernel(W, S, OUT, N, K, stride_s, BLOCK: tl.constexpr):
    bn, bk = tl.program_id(0), tl.program_id(1)
    rn = bn * BLOCK + tl.arange(0, BLOCK)
    rk = bk * BLOCK + tl.arange(0, BLOCK)
    m = (rn < N)[:, None] & (rk < K)[None, :]
    off = rn.to(tl.int64)[:, None] * K + rk[None, :]
    w = tl.load(W + off, mask=m, other=0.0).to(tl.float32)
    s = tl.load(S + bn * stride_s + bk)
    tl.store(OUT + off, (w * s).to(OUT.dtype.element_ty), mask=m)


@triton.jit
def _fp4_dequant_kernel(P, S, OUT, N, KH, BLOCK_N: tl.constexpr, BLOCK_KH: tl.constexpr):
    rn = tl.program_id(0) * BLOCK_N + tl.arange(0, BLOCK_N)
    rj = tl.program_id(1) * BLOCK_KH + tl.arange(0, BLOCK_KH)                  # byte column: logical 2j, 2j+1
    m = (rn < N)[:, None] & (rj < KH)[None, :]
    b = tl.load(P + rn.to(tl.int64)[:, None] * KH + rj[None, :], mask=m, other=0).to(tl.int32) & 0xFF
    s = tl.load(S + rn.to(tl.int64)[:, None] * (KH // 16) + (rj // 16)[None, :], mask=m, other=0.0)
    for half in tl.static_range(2):
        c = (b >> (4 * half)) & 0xF
        mag = c & 7
        e = (mag >> 1).to(tl.float32)
        # e2m1: codes 0,1 → 0, 0.5 (subnormal); code 2e+m (e >= 1) → 2^(e-1)·(1 + m/2)
        v = tl.where(mag < 2, mag.to(tl.float32) * 0.5, tl.exp2(e - 1.0) * (1.0 + (mag & 1).to(tl.float32) * 0.5))
        v = tl.where(c >= 8, -v, v) * s
        tl.store(OUT + rn.to(tl.int64)[:, None] * (2 * KH) + 2 * rj[None, :] + half, v.to(OUT.dtype.element_ty), mask=m)


def fp8_dequant_triton(weight, scale, dtype=torch.bfloat16):
    """Triton launch of `fp8_dequant`."""
    _check_fp8(weight, scale)
    n, k = weight.shape
    s = scale_to_float(scale).contiguous()
    out = torch.empty(n, k, dtype=dtype, device=weight.device)
    if n and k:
        _fp8_dequant_kernel[(s.shape[0], s.shape[1])](weight.contiguous(), s, out, n, k, s.stride(0), BLOCK=FP8_BLOCK)
    return out


def fp4_dequant_triton(packed, scale, dtype=torch.bfloat16):
    """Triton launch of `fp4_dequant`."""
    _check_fp4(packed, scale)
    n, kh = packed.shape
    s = scale_to_float(scale).contiguous()
    out = torch.empty(n, 2 * kh, dtype=dtype, device=packed.device)
    if n and kh:
        bn, bkh = 16, 64
        _fp4_dequant_kernel[(triton.cdiv(n, bn), triton.cdiv(kh, bkh))](packed.contiguous(), s, out, n, kh,
                                                                         BLOCK_N=bn, BLOCK_KH=bkh)
    return out


def fp8_dequant(weight, scale, dtype=torch.bfloat16):
    """Block-FP8 `[N, K]` → dtype; CUDA → Triton, CPU → torch."""
    return (fp8_dequant_triton if use_triton(weight) else fp8_dequant_torch)(weight, scale, dtype)


def fp4_dequant(packed, scale, dtype=torch.bfloat16):
    """MXFP4 packed `[N, K/2]` → dtype `[N, K]`; CUDA → Triton, CPU → torch."""
    return (fp4_dequant_triton if use_triton(packed) else fp4_dequant_torch)(packed, scale, dtype)


__all__ = ["ShapeError", "naive_fp8_dequant", "naive_fp4_dequant", "fp8_dequant", "fp4_dequant",
           "fp8_dequant_triton", "fp4_dequant_triton", "scale_to_float"]
