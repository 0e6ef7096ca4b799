"""Manifold hyper-connections (docs/model.md#mhc): split the mixes into pre / post / comb with Sinkhorn, reduce the hc
residual streams to one (hc_pre), and expand the sub-layer output back (hc_post: post[k]·x + Σ_j comb[j,k]·X[j]).
The `fn·x` GEMM stays in torch; the kernels fuse the RMS scale, the Sinkhorn split and the stream reductions.
"""

import torch
import triton
import triton.language as tl

from . import cpu_native
from .dispatch import use_triton
from .errors import check

##### Reference #####


def naive_hc_split_sinkhorn(mixes, hc_scale, hc_base, hc_mult, iters, eps):
    """mixes `[T, (2+hc)·hc]` → pre `[T, hc]`, post `[T, hc]`, comb `[T, hc, hc]` (REF hc_split_sinkhorn)."""
    hc = hc_mult
    m = mixes.float()
    pre = torch.sigmoid(m[:, :hc] * hc_scale[0] + hc_base[:hc]) + eps
    post = 2 * torch.sigmoid(m[:, hc:2 * hc] * hc_scale[1] + hc_base[hc:2 * hc])
    comb = (m[:, 2 * hc:] * hc_scale[2] + hc_base[2 * hc:]).unflatten(-1, (hc, hc))
    comb = comb.softmax(-1) + eps
    comb = comb / (comb.sum(-2, keepdim=True) + eps)
    for _ in range(iters - 1):
        comb = comb / (comb.sum(-1, keepdim=True) + eps)
        comb = comb / (comb.sum(-2, keepdim=True) + eps)
    return pre, post, comb


def naive_hc_pre(x, hc_fn, hc_scale, hc_base, *, iters, norm_eps, hc_eps):
    """x `[T, hc, d]`, hc_fn `[(2+hc)·hc, hc·d]` → y `[T, d]` (x's dtype), post `[T, hc]`, comb `[T, hc, hc]`."""
    t, hc, d = x.shape
    v = x.reshape(t, hc * d).float()
    mixes = (v @ hc_fn.float().T) * torch.rsqrt(v.pow(2).mean(-1, keepdim=True) + norm_eps)
    pre, post, comb = naive_hc_split_sinkhorn(mixes, hc_scale, hc_base, hc, iters, hc_eps)
    return (pre[..., None] * x.float()).sum(1).to(x.dtype), post, comb


def naive_hc_post(x, residual, post, comb):
    """x `[T, d]`, residual `[T, hc, d]`, post `[T, hc]`, comb `[T, hc, hc]` → `[T, hc, d]`."""
    mixed = torch.einsum("tjk,tjd->tkd", comb.float(), residual.float())
    return (post.float()[..., None] * x.float()[:, None, :] + mixed).to(residual.dtype)


##### CPU fast path #####


_SCALE_INDEX: dict[int, torch.Tensor] = {}  # hc -> which of hc_scale's 3 entries scales each of the mix columns


def _f32(t: torch.Tensor) -> torch.Tensor:
    return t if t.dtype == torch.float32 else t.float()


def hc_split_sinkhorn_torch(mixes, hc_scale, hc_base, hc_mult, iters, eps):
    """The split with comb laid out [hc, hc, T] (tokens last, so each of the 2·iters normalizations is one short
    vectorized pass instead of many tiny rows); same operations, same order as the twin (the three scale-and-shift
    products as one over all mix columns, the same products per element). On CPU the normalizations run in C
    (kernels.cpu_native, bit-identical to the torch loop) when the library could be built: a decode step pays
    torch's per-op cost for every one of these ops, whatever T is."""
    hc = hc_mult
    m = _f32(mixes)
    idx = _SCALE_INDEX.get(hc)
    if idx is None or idx.device != m.device:
        idx = _SCALE_INDEX[hc] = torch.tensor([0] * hc + [1] * hc + [2] * hc * hc, device=m.device)
    z = (m * _f32(hc_scale)[idx]).add_(_f32(hc_base))  # [T, (2+hc)·hc]
    pre = torch.sigmoid(z[:, :hc].contiguous()).add_(eps)  # contiguous as before: sigmoid's vector and scalar
    post = torch.sigmoid(z[:, hc:2 * hc].contiguous()).mul_(2)  # paths round differently
    comb = z[:, 2 * hc:].T.reshape(hc, hc, -1).contiguous()   # [j, k, T]
    comb = comb.softmax(1).add_(eps)
    if not cpu_native.sinkhorn_(comb, iters, eps):  # on CPU the same loop in C: ~117 torch ops -> one call
        sinkhorn_torch_(comb, iters, eps)
    return pre, post, comb.permute(2, 0, 1)


def sinkhorn_torch_(comb: torch.Tensor, iters: int, eps: float) -> torch.Tensor:
    """The Sinkhorn normalizations of a tokens-last comb [hc, hc, T], in place (kernels.cpu_native.sinkhorn_ is
    this loop in C): 2·iters - 1 passes, each a sum over one axis, + eps, a division."""
    comb.div_(comb.sum(0, keepdim=True).add_(eps))
    for _ in range(iters - 1):
        comb.div_(comb.sum(1, keepdim=True).add_(eps))
        comb.div_(comb.sum(0, keepdim=True).add_(eps))
    return comb


def hc_pre_torch(x, hc_fn, hc_scale, hc_base, *, iters, norm_eps, hc_eps):
    """As naive_hc_pre, with the Sinkhorn split of hc_split_sinkhorn_torch and the reduction as one bmm."""
    t, hc, d = x.shape
    v = x.reshape(t, hc * d).float()
    mixes = (v @ hc_fn.float().T).mul_(torch.rsqrt(v.square().mean(-1, keepdim=True).add_(norm_eps)))
    pre, post, comb = hc_split_sinkhorn_torch(mixes, hc_scale, hc_base, hc, iters, hc_eps)
    y = torch.bmm(pre[:, None, :], v.view(t, hc, d)).view(t, d)
    return y.to(x.dtype), post, comb


def hc_post_torch(x, residual, post, comb):
    """As naive_hc_post: post[k]·x + Σ_j comb[j,k]·residual[j], as hc fused multiply-adds over [T, hc, d] (the
    per-j operands taken as views in two ops, not 4·hc indexing ops)."""
    out = _f32(post).unsqueeze(-1) * _f32(x).unsqueeze(1)
    for c, r in zip(_f32(comb).unsqueeze(-1).unbind(1), _f32(residual).unsqueeze(2).unbind(1)):
        out.addcmul_(c, r)  # c [T, k, 1] = comb[:, j, :], r [T, 1, d] = residual[:, j]
    return out.to(residual.dtype)

##### Triton kernels #####


@triton.jit
def _hc_pre_kernel(X, MIX, SCALE, BASE, PRE, POST, COMB, Y, HC, D, ITERS, norm_eps, hc_eps,
                   HAS_X: tl.constexpr, BLOCK_HC: tl.constexpr, BLOCK_D: tl.constexpr):
    t = tl.program_id(0).to(tl.int64)
    oh = tl.arange(0, BLOCK_HC)
    od = tl.arange(0, BLOCK_D)
    hm = oh < HC
    rs = 1.0
    if HAS_X:  # -- rsqrt(mean(v²)) over the hc·d flattened streams
        ss = tl.zeros([BLOCK_HC, BLOCK_D], tl.float32)
        for d0 in range(0, D, BLOCK_D):
            m2 = hm[:, None] & (d0 + od < D)[None, :]
            xv = tl.load(X + t * HC * D + oh[:, None] * D + d0 + od[None, :], mask=m2, other=0.0).to(tl.float32)
            ss += xv * xv
        rs = tl.math.rsqrt(tl.sum(tl.sum(ss, 1), 0) / (HC * D) + norm_eps)
    mix_w = (2 + HC) * HC
    s0, s1, s2 = tl.load(SCALE), tl.load(SCALE + 1), tl.load(SCALE + 2)
    pre = tl.sigmoid(tl.load(MIX + t * mix_w + oh, mask=hm, other=0.0) * rs * s0 + tl.load(BASE + oh, mask=hm)) + hc_eps
    post = 2 * tl.sigmoid(tl.load(MIX + t * mix_w + HC + oh, mask=hm, other=0.0) * rs * s1
                          + tl.load(BASE + HC + oh, mask=hm))
    # -- comb: row softmax, +eps, column-normalize, then (row, column) x (ITERS-1)
    cm = hm[:, None] & hm[None, :]
    cidx = 2 * HC + oh[:, None] * HC + oh[None, :]
    c = tl.load(MIX + t * mix_w + cidx, mask=cm, other=0.0) * rs * s2 + tl.load(BASE + cidx, mask=cm, other=0.0)
    c = tl.where(cm, c, float("-inf"))
    c = tl.exp(c - tl.max(c, 1)[:, None])
    c = tl.where(cm, c / tl.sum(c, 1)[:, None] + hc_eps, 0.0)
    c = c / (tl.sum(c, 0)[None, :] + hc_eps)
    for _ in range(ITERS - 1):
        c = c / (tl.sum(c, 1)[:, None] + hc_eps)
        c = c / (tl.sum(c, 0)[None, :] + hc_eps)
    tl.store(PRE + t * HC + oh, pre, mask=hm)
    tl.store(POST + t * HC + oh, post, mask=hm)
    tl.store(COMB + t * HC * HC + oh[:, None] * HC + oh[None, :], c, mask=cm)
    if HAS_X:  # -- y = Σ_i pre_i · X_i
        for d0 in range(0, D, BLOCK_D):
            m2 = hm[:, None] & (d0 + od < D)[None, :]
            xv = tl.load(X + t * HC * D + oh[:, None] * D + d0 + od[None, :], mask=m2, other=0.0).to(tl.float32)
            y = tl.sum(xv * pre[:, None], 0)
            tl.store(Y + t * D + d0 + od, y.to(Y.dtype.element_ty), mask=d0 + od < D)


@triton.jit
def _hc_post_kernel(X, RES, POST, COMB, OUT, HC, D, BLOCK_HC: tl.constexpr, BLOCK_D: tl.constexpr):
    t = tl.program_id(0).to(tl.int64)
    od = tl.program_id(1) * BLOCK_D + tl.arange(0, BLOCK_D)
    oh = tl.arange(0, BLOCK_HC)
    hm, dm = oh < HC, od < D
    x = tl.load(X + t * D + od, mask=dm, other=0.0).to(tl.float32)                          # [BLOCK_D]
    res = tl.load(RES + t * HC * D + oh[:, None] * D + od[None, :], mask=hm[:, None] & dm[None, :],
                  other=0.0).to(tl.float32)                                                 # [hc(j), BLOCK_D]
    c = tl.load(COMB + t * HC * HC + oh[:, None] * HC + oh[None, :], mask=hm[:, None] & hm[None, :], other=0.0)
    post = tl.load(POST + t * HC + oh, mask=hm, other=0.0)
    mixed = tl.sum(c[:, :, None] * res[:, None, :], 0)                                     # [hc(k), BLOCK_D]
    out = post[:, None] * x[None, :] + mixed
    tl.store(OUT + t * HC * D + oh[:, None] * D + od[None, :], out.to(OUT.dtype.element_ty),
             mask=hm[:, None] & dm[None, :])


def hc_pre_triton(x, hc_fn, hc_scale, hc_base, *, iters, norm_eps, hc_eps):
    """torch GEMM for fn·x, then one fused Triton kernel (RMS scale, Sinkhorn split, stream reduction)."""
    check(x.dim() == 3 and x.is_contiguous(), f"x must be contiguous [T, hc, d], got {tuple(x.shape)}")
    t, hc, d = x.shape
    check(hc_fn.shape == ((2 + hc) * hc, hc * d), f"hc_fn must be [{(2 + hc) * hc}, {hc * d}]")
    check(hc_scale.numel() == 3 and hc_base.numel() == (2 + hc) * hc, "hc_scale [3], hc_base [(2+hc)·hc]")
    mixes = (x.reshape(t, hc * d).float() @ hc_fn.float().T).contiguous()                  # [T, mix] (unscaled)
    pre = torch.empty(t, hc, dtype=torch.float32, device=x.device)
    post, comb = torch.empty_like(pre), torch.empty(t, hc, hc, dtype=torch.float32, device=x.device)
    y = torch.empty(t, d, dtype=x.dtype, device=x.device)
    if t:
        _hc_pre_kernel[(t,)](x, mixes, hc_scale.float().contiguous(), hc_base.float().contiguous(), pre, post, comb,
                             y, hc, d, iters, norm_eps, hc_eps, HAS_X=True,
                             BLOCK_HC=triton.next_power_of_2(hc), BLOCK_D=min(1024, triton.next_power_of_2(d)))
    return y, post, comb


def hc_split_sinkhorn_triton(mixes, hc_scale, hc_base, hc_mult, iters, eps):
    """The Sinkhorn split alone (REF `hc_split_sinkhorn` contract) on already-scaled mixes `[T, (2+hc)·hc]`."""
    t, mix = mixes.shape
    check(mix == (2 + hc_mult) * hc_mult, f"mixes must be [T, {(2 + hc_mult) * hc_mult}], got {tuple(mixes.shape)}")
    m = mixes.float().contiguous()
    pre = torch.empty(t, hc_mult, dtype=torch.float32, device=m.device)
    post, comb = torch.empty_like(pre), torch.empty(t, hc_mult, hc_mult, dtype=torch.float32, device=m.device)
    if t:
        _hc_pre_kernel[(t,)](m, m, hc_scale.float().contiguous(), hc_base.float().contiguous(), pre, post, comb,
                             m, hc_mult, 1, iters, 0.0, eps, HAS_X=False,
                             BLOCK_HC=triton.next_power_of_2(hc_mult), BLOCK_D=16)
    return pre, post, comb


def hc_split_sinkhorn(mixes, hc_scale, hc_base, hc_mult=4, iters=20, eps=1e-6):
    """mixes `[T, (2+hc)·hc]` → pre, post `[T, hc]`, comb `[T, hc, hc]`; CUDA → Triton, CPU → torch."""
    if use_triton(mixes):
        return hc_split_sinkhorn_triton(mixes, hc_scale, hc_base, hc_mult, iters, eps)
    return hc_split_sinkhorn_torch(mixes, hc_scale, hc_base, hc_mult, iters, eps)


def hc_post_triton(x, residual, post, comb):
    """Fused expand: out[k] = post[k]·x + Σ_j comb[j,k]·residual[j]."""
    check(residual.dim() == 3 and residual.is_contiguous(), "residual must be contiguous [T, hc, d]")
    t, hc, d = residual.shape
    check(x.shape == (t, d) and post.shape == (t, hc) and comb.shape == (t, hc, hc), "x [T,d], post [T,hc], comb")
    out = torch.empty_like(residual)
    if t:
        bd = min(512, triton.next_power_of_2(d))
        _hc_post_kernel[(t, triton.cdiv(d, bd))](x.contiguous(), residual, post.float().contiguous(),
                                                 comb.float().contiguous(), out, hc, d,
                                                 BLOCK_HC=triton.next_power_of_2(hc), BLOCK_D=bd)
    return out


def hc_pre(x, hc_fn, hc_scale, hc_base, *, iters, norm_eps, hc_eps):
    """x `[T, hc, d]` → (y `[T, d]`, post `[T, hc]`, comb `[T, hc, hc]`); CUDA → Triton, CPU → torch."""
    if use_triton(x):
        return hc_pre_triton(x, hc_fn, hc_scale, hc_base, iters=iters, norm_eps=norm_eps, hc_eps=hc_eps)
    return hc_pre_torch(x, hc_fn, hc_scale, hc_base, iters=iters, norm_eps=norm_eps, hc_eps=hc_eps)


def hc_post(x, residual, post, comb):
    """x `[T, d]`, residual `[T, hc, d]` → `[T, hc, d]`; CUDA → Triton, CPU → torch."""
    if use_triton(x):
        return hc_post_triton(x, residual, post, comb)
    return hc_post_torch(x, residual, post, comb)
