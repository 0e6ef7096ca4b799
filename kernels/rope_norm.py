"""RMSNorm + RoPE on q / kv rows, and the inverse RoPE on attention outputs (docs/model.md#attention).

RoPE is interleaved pairs (x[2i], x[2i+1]) on the LAST rope_dim channels, angle = table[position, i].
q: per-head unweighted RMSNorm then RoPE; kv: weighted RMSNorm then RoPE; o: inverse RoPE (rotate by −angle).
"""

import torch
import triton
import triton.language as tl

from .dispatch import use_triton
from .errors import ConfigError, check

##### Reference #####


def _rope(x, cos, sin, positions, rope_dim, inverse):
    """Rotate the last rope_dim channels of x `[T, H, D]` (fp32) in interleaved pairs."""
    if not rope_dim:
        return x
    c = cos[positions.long()].float()[:, None, :]                                  # [T, 1, rd/2]
    s = sin[positions.long()].float()[:, None, :]
    s = -s if inverse else s
    xr = x[..., -rope_dim:].unflatten(-1, (-1, 2))
    e, o = xr[..., 0], xr[..., 1]
    return torch.cat([x[..., :-rope_dim], torch.stack([e * c - o * s, e * s + o * c], -1).flatten(-2)], -1)


def naive_rmsnorm_rope(x, weight, cos, sin, positions, rope_dim, eps=1e-6):
    """y = RoPE(x·rsqrt(mean(x²)+eps)·weight) for x `[T, H, D]` or `[T, D]`; weight None = unweighted."""
    xf = x.float()
    y = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)
    if weight is not None:
        y = y * weight.float()
    y3 = y if y.dim() == 3 else y[:, None]
    return _rope(y3, cos, sin, positions, rope_dim, False).reshape(x.shape).to(x.dtype)


def naive_inverse_rope(x, cos, sin, positions, rope_dim):
    """De-rotate the rope part of attention outputs x `[T, H, D]` at each query's position."""
    x3 = x.float() if x.dim() == 3 else x.float()[:, None]
    return _rope(x3, cos, sin, positions, rope_dim, True).reshape(x.shape).to(x.dtype)


def naive_rope(x, cos, sin, positions, rope_dim):
    """Plain RoPE (no norm) of x `[T, H, D]` or `[T, D]` at each row's position (e.g. the indexer query)."""
    x3 = x.float() if x.dim() == 3 else x.float()[:, None]
    return _rope(x3, cos, sin, positions, rope_dim, False).reshape(x.shape).to(x.dtype)


# The plain-torch twins are already vectorized and chunk-free (O(T·H·D)); the CPU path is the same code.
rmsnorm_rope_torch = naive_rmsnorm_rope
inverse_rope_torch = naive_inverse_rope
rope_torch = naive_rope

##### Triton kernel #####


@triton.jit
def _rope_norm_kernel(X, Y, W, COS, SIN, POS, stride_xt, stride_xh, stride_yt, stride_yh, stride_cos,
                      H, D, ROPE_PAIRS, eps,
                      DO_NORM: tl.constexpr, HAS_W: tl.constexpr, INVERSE: tl.constexpr,
                      BLOCK_H: tl.constexpr, BLOCK_P: tl.constexpr):
    t = tl.program_id(0)
    offs_h = tl.program_id(1) * BLOCK_H + tl.arange(0, BLOCK_H)
    offs_p = tl.arange(0, BLOCK_P)
    msk = (offs_h < H)[:, None] & (offs_p < D // 2)[None, :]
    src = X + t * stride_xt + offs_h[:, None] * stride_xh + 2 * offs_p[None, :]
    e = tl.load(src, mask=msk, other=0.0).to(tl.float32)                       # even channels [BLOCK_H, BLOCK_P]
    o = tl.load(src + 1, mask=msk, other=0.0).to(tl.float32)
    if DO_NORM:
        rstd = tl.math.rsqrt((tl.sum(e * e, 1) + tl.sum(o * o, 1)) / D + eps)
        e = e * rstd[:, None]
        o = o * rstd[:, None]
        if HAS_W:
            pm = offs_p < D // 2
            e = e * tl.load(W + 2 * offs_p, mask=pm, other=0.0).to(tl.float32)[None, :]
            o = o * tl.load(W + 2 * offs_p + 1, mask=pm, other=0.0).to(tl.float32)[None, :]
    i = offs_p - (D // 2 - ROPE_PAIRS)
    rm = (i >= 0) & (offs_p < D // 2)
    pos = tl.load(POS + t).to(tl.int64)
    c = tl.load(COS + pos * stride_cos + i, mask=rm, other=1.0)[None, :]
    s = tl.load(SIN + pos * stride_cos + i, mask=rm, other=0.0)[None, :]
    if INVERSE:
        s = -s
    e, o = e * c - o * s, e * s + o * c
    dst = Y + t * stride_yt + offs_h[:, None] * stride_yh + 2 * offs_p[None, :]
    tl.store(dst, e.to(Y.dtype.element_ty), mask=msk)
    tl.store(dst + 1, o.to(Y.dtype.element_ty), mask=msk)


def _launch(x, weight, cos, sin, positions, rope_dim, eps, do_norm, inverse):
    check(x.dim() in (2, 3) and x.stride(-1) == 1, f"x must be [T, H, D] or [T, D], got {tuple(x.shape)}")
    x3 = x if x.dim() == 3 else x[:, None]
    t, h, d = x3.shape
    check(d % 2 == 0 and rope_dim % 2 == 0 and rope_dim <= d, f"D {d} and rope_dim {rope_dim} must be even",
          ConfigError)
    check(positions.shape == (t,) and not positions.dtype.is_floating_point, f"positions must be int [{t}]")
    check(cos.shape == sin.shape and cos.shape[1] == rope_dim // 2, f"cos/sin must be [max_pos, {rope_dim // 2}]")
    check(weight is None or weight.shape == (d,), f"weight must be [{d}]")
    y = torch.empty_like(x3)
    if t == 0:
        return y.reshape(x.shape)
    block_p = triton.next_power_of_2(max(d // 2, 1))
    block_h = max(1, min(triton.next_power_of_2(h), 4096 // block_p))
    _rope_norm_kernel[(t, triton.cdiv(h, block_h))](
        x3, y, weight if weight is not None else x3, cos.contiguous(), sin.contiguous(), positions,
        x3.stride(0), x3.stride(1), y.stride(0), y.stride(1), cos.stride(0), h, d, rope_dim // 2, eps,
        DO_NORM=do_norm, HAS_W=weight is not None, INVERSE=inverse, BLOCK_H=block_h, BLOCK_P=block_p)
    return y.reshape(x.shape)


def rmsnorm_rope_triton(x, weight, cos, sin, positions, rope_dim, eps=1e-6):
    """Triton launch of `rmsnorm_rope`."""
    return _launch(x, weight, cos, sin, positions, rope_dim, eps, True, False)


def rope_triton(x, cos, sin, positions, rope_dim):
    """Triton launch of `rope`."""
    return _launch(x, None, cos, sin, positions, rope_dim, 0.0, False, False)


def inverse_rope_triton(x, cos, sin, positions, rope_dim):
    """Triton launch of `inverse_rope`."""
    return _launch(x, None, cos, sin, positions, rope_dim, 0.0, False, True)


def rmsnorm_rope(x, weight, cos, sin, positions, rope_dim, eps=1e-6):
    """x `[T, H, D]` or `[T, D]`, weight `[D]` or None, cos/sin `[max_pos, rope_dim/2]`, positions int `[T]` →
    same shape/dtype: RMSNorm (fp32 math) then RoPE. CUDA → Triton, CPU → torch."""
    if use_triton(x):
        return rmsnorm_rope_triton(x, weight, cos, sin, positions, rope_dim, eps)
    return rmsnorm_rope_torch(x, weight, cos, sin, positions, rope_dim, eps)


def inverse_rope(x, cos, sin, positions, rope_dim):
    """x `[T, H, D]` attention outputs → rope part rotated back by each query position's angle."""
    if use_triton(x):
        return inverse_rope_triton(x, cos, sin, positions, rope_dim)
    return inverse_rope_torch(x, cos, sin, positions, rope_dim)


def rope(x, cos, sin, positions, rope_dim):
    """x `[T, H, D]` or `[T, D]` → RoPE on the last rope_dim channels, no norm (indexer q). CUDA → Triton."""
    if use_triton(x):
        return rope_triton(x, cos, sin, positions, rope_dim)
    return rope_torch(x, cos, sin, positions, rope_dim)
