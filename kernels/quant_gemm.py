"""GEMMs on weights kept in the release formats (docs/quantized-weights.md): block-FP8 e4m3 with one ue8m0 scale per
128×128 block, and MXFP4 e2m1 (two codes per byte, low nibble = even column) with one ue8m0 scale per 32 columns.

`quant_linear(x, w, s, fmt)` is y = x · dequant(w)ᵀ for x [M, K]; `quant_grouped(x, w, s, offsets, fmt)` is the same
per expert over rows sorted by expert (rows offsets[e]:offsets[e+1] use w[e]), the routed-expert GEMM, in one launch
and without a loop over experts. Activations are bf16 / fp32; with `act_fp8` they are first rounded to FP8 e4m3 per
row in blocks of 128 with ue8m0 scales, as DeepSeek's reference quantizes GEMM inputs (the reference-numerics switch).

The Triton kernels dequantize each weight tile in registers and accumulate in fp32; the plain-torch twins (`*_torch`)
dequantize the weights, then matmul. Scales may be float8_e8m0fnu, raw uint8 exponent bytes or float32.
"""

import torch
import triton
import triton.language as tl

from .dequant import FP4_BLOCK, FP8_BLOCK, naive_fp4_dequant, naive_fp8_dequant
from .dispatch import use_triton
from .errors import ShapeError, check

FP8_MAX, ACT_BLOCK, ACT_AMAX_FLOOR = 448.0, 128, 1e-4
FORMATS = ("fp8", "fp4")

##### Checks #####


def _logical_k(w: torch.Tensor, fmt: str) -> int:
    return w.shape[-1] * (2 if fmt == "fp4" else 1)


def _check(x: torch.Tensor, w: torch.Tensor, s: torch.Tensor, fmt: str, grouped: bool) -> None:
    check(fmt in FORMATS, f"fmt must be one of {FORMATS}, got {fmt!r}")
    nd = 3 if grouped else 2
    check(w.dim() == nd and s.dim() == nd, f"weights and scales must be {nd}-D, got {w.dim()}-D and {s.dim()}-D")
    check(x.dim() == 2, f"x must be 2-D [rows, K], got {tuple(x.shape)}")
    check(x.dtype in (torch.float32, torch.bfloat16, torch.float16), f"x must be fp32/bf16/fp16, got {x.dtype}")
    n, k = w.shape[-2], _logical_k(w, fmt)
    check(x.shape[1] == k, f"x has K={x.shape[1]} but the {fmt} weight has K={k}")
    if fmt == "fp8":
        check(w.dtype == torch.float8_e4m3fn, f"FP8 weights must be float8_e4m3fn, got {w.dtype}")
        grid = (-(-n // FP8_BLOCK), -(-k // FP8_BLOCK))
    else:
        check(w.dtype in (torch.int8, torch.uint8), f"FP4 weights must be int8/uint8 bytes, got {w.dtype}")
        check(k % FP4_BLOCK == 0, f"FP4 K must be a multiple of {FP4_BLOCK}, got {k}")
        grid = (n, k // FP4_BLOCK)
    check(tuple(s.shape[-2:]) == grid, f"{fmt} weight {tuple(w.shape)} needs scales [..., {grid[0]}, {grid[1]}], "
                                       f"got {tuple(s.shape)}")
    if grouped:
        check(s.shape[0] == w.shape[0], f"{w.shape[0]} expert weights but {s.shape[0]} scale sets")


##### Plain-torch twins #####


def ceil_log2(v: torch.Tensor) -> torch.Tensor:
    """Exact ceil(log2(v)) of positive fp32 v from its exponent bits."""
    mant, exp = torch.frexp(v.float())
    return torch.where(mant == 0.5, exp - 1, exp).to(torch.int32)


def act_quant_fp8_torch(x: torch.Tensor) -> torch.Tensor:
    """x [..., K] rounded to FP8 e4m3 per 128 along K (a partial last block gets its own scale), ue8m0 scales
    s = 2^ceil(log2(max(amax, 1e-4) / 448)), returned in x's dtype (the values q·s it holds)."""
    k = x.shape[-1]
    nb = -(-k // ACT_BLOCK)
    xf = torch.nn.functional.pad(x.float(), (0, nb * ACT_BLOCK - k)).unflatten(-1, (nb, ACT_BLOCK))
    amax = xf.abs().amax(-1, keepdim=True).clamp_min(ACT_AMAX_FLOOR)
    s = torch.ldexp(torch.ones_like(amax), ceil_log2(amax * torch.tensor(1 / FP8_MAX, dtype=torch.float32)))
    q = (xf / s).clamp(-FP8_MAX, FP8_MAX).to(torch.float8_e4m3fn).float() * s
    return q.flatten(-2)[..., :k].to(x.dtype)


def dequant_weights(w: torch.Tensor, s: torch.Tensor, fmt: str, dtype: torch.dtype) -> torch.Tensor:
    """[..., N, K(/2)] weights with their scales → dtype [..., N, K]; any leading (expert) dims, vectorized
    (kernels/dequant.py's twins)."""
    return (naive_fp8_dequant if fmt == "fp8" else naive_fp4_dequant)(w, s, dtype)


def quant_linear_torch(x, w, s, fmt: str, act_fp8: bool = False) -> torch.Tensor:
    """Twin of `quant_linear`: dequantize the weight, matmul in x's dtype."""
    _check(x, w, s, fmt, grouped=False)
    if act_fp8:
        x = act_quant_fp8_torch(x)
    return torch.nn.functional.linear(x, dequant_weights(w, s, fmt, x.dtype))


def quant_grouped_torch(x, w, s, offsets, fmt: str, act_fp8: bool = False) -> torch.Tensor:
    """Twin of `quant_grouped`: rows padded per expert into [E_used, max rows, K], the used experts dequantized at
    once, one batched matmul, rows gathered back (no loop over experts)."""
    _check(x, w, s, fmt, grouped=True)
    m = x.shape[0]
    out = x.new_zeros(m, w.shape[1])
    if m == 0:
        return out
    if act_fp8:
        x = act_quant_fp8_torch(x)
    offsets = offsets.to(device=x.device, dtype=torch.int64)
    counts = offsets.diff()
    used = torch.nonzero(counts).flatten()  # experts with rows
    expert = torch.repeat_interleave(torch.arange(len(counts), device=x.device), counts)  # [M]
    slot = torch.searchsorted(used, expert)  # index among the used experts
    pos = torch.arange(m, device=x.device) - offsets[expert]  # row within its expert
    padded = x.new_zeros(len(used), int(counts.max()), x.shape[1])
    padded[slot, pos] = x
    wd = dequant_weights(w[used], s[used], fmt, x.dtype)  # [E_used, N, K]
    return torch.bmm(padded, wd.transpose(1, 2))[slot, pos]


##### Triton kernels #####


@triton.jit
def _ceil_log2(v):
    bits = v.to(tl.int32, bitcast=True)
    e = ((bits >> 23) & 0xFF) - 127
    return e + ((bits & 0x7FFFFF) != 0).to(tl.int32)


@triton.jit
def _e2m1(c):
    """4-bit e2m1 codes (sign in bit 3) → fp32."""
    mag = c & 7
    e = (mag >> 1).to(tl.float32)
    v = tl.where(mag < 2, mag.to(tl.float32) * 0.5, tl.exp2(e - 1.0) * (1.0 + (mag & 1).to(tl.float32) * 0.5))
    return tl.where(c >= 8, -v, v)


@triton.jit
def _qgemm_kernel(X, W, S, OUT, TILE_E, TILE_ROW, ROW_END, N, K, stride_we, stride_se, KB,
                  FP4: tl.constexpr, ACT_FP8: tl.constexpr, SCALE_E8M0: tl.constexpr, IEEE: tl.constexpr,
                  BM: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr):
    """One [BM, BN] output tile of the rows of one expert: TILE_E / TILE_ROW give the tile's expert and first row,
    ROW_END its expert's end. BK = 128 = the FP8 scale block and the activation block."""
    t = tl.program_id(0)
    e = tl.load(TILE_E + t).to(tl.int64)
    r0 = tl.load(TILE_ROW + t)
    r_end = tl.load(ROW_END + t)
    rm = r0 + tl.arange(0, BM)
    rn = tl.program_id(1) * BN + tl.arange(0, BN)
    m_ok, n_ok = rm < r_end, rn < N
    w_base, s_base = W + e * stride_we, S + e * stride_se
    acc = tl.zeros((BM, BN), dtype=tl.float32)
    for k0 in range(0, K, BK):
        rk = k0 + tl.arange(0, BK)
        k_ok = rk < K
        x = tl.load(X + rm.to(tl.int64)[:, None] * K + rk[None, :], mask=m_ok[:, None] & k_ok[None, :], other=0.0)
        if ACT_FP8:
            xf = x.to(tl.float32)
            amax = tl.maximum(tl.max(tl.abs(xf), axis=1), 1e-4)
            sc = tl.exp2(_ceil_log2(amax * (1.0 / 448.0)).to(tl.float32))
            q = tl.minimum(tl.maximum(xf / sc[:, None], -448.0), 448.0).to(tl.float8e4nv).to(tl.float32)
            x = (q * sc[:, None]).to(x.dtype)
        if FP4:
            rj = k0 // 2 + tl.arange(0, BK // 2)  # byte columns: logical 2j, 2j+1
            bm = n_ok[:, None] & (2 * rj < K)[None, :]
            b = tl.load(w_base + rn.to(tl.int64)[:, None] * (K // 2) + rj[None, :], mask=bm, other=0)
            b = b.to(tl.int32) & 0xFF
            v = tl.interleave(_e2m1(b & 0xF), _e2m1(b >> 4))  # [BN, BK]
            s = tl.load(s_base + rn.to(tl.int64)[:, None] * (K // 32) + (rk // 32)[None, :],
                        mask=n_ok[:, None] & k_ok[None, :], other=0)
        else:
            v = tl.load(w_base + rn.to(tl.int64)[:, None] * K + rk[None, :], mask=n_ok[:, None] & k_ok[None, :],
                        other=0.0).to(tl.float32)
            s = tl.load(s_base + (rn // 128)[:, None] * KB + k0 // 128, mask=n_ok[:, None], other=0)
        if SCALE_E8M0:
            s = tl.exp2(s.to(tl.float32) - 127.0)
        wt = (v * s.to(tl.float32)).to(x.dtype)
        if IEEE:
            acc += tl.dot(x, tl.trans(wt), input_precision="ieee")
        else:
            acc += tl.dot(x, tl.trans(wt))
    tl.store(OUT + rm.to(tl.int64)[:, None] * N + rn[None, :], acc.to(OUT.dtype.element_ty),
             mask=m_ok[:, None] & n_ok[None, :])


def _scale_arg(s: torch.Tensor) -> tuple[torch.Tensor, bool]:
    """Scales as the kernel reads them: ue8m0 bytes (uint8) or fp32."""
    if s.dtype in (torch.float8_e8m0fnu, torch.uint8):
        return s.contiguous().view(torch.uint8), True
    return s.float().contiguous(), False


def _tiles(offsets: torch.Tensor, bm: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per output row-tile: its expert, first row and the expert's end row (one small host sync for the count)."""
    offsets = offsets.to(torch.int64)
    counts = offsets.diff()
    per = (counts + bm - 1) // bm
    tile_e = torch.repeat_interleave(torch.arange(len(counts), device=offsets.device), per)
    first = torch.cumsum(per, 0) - per  # first tile of each expert
    idx = torch.arange(len(tile_e), device=offsets.device)
    rows = offsets[tile_e] + (idx - first[tile_e]) * bm
    return tile_e.to(torch.int32), rows.to(torch.int32), offsets[1:][tile_e].to(torch.int32)


def _plain_tiles(m: int, bm: int, device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The tiles of one expert holding all m rows (no host sync)."""
    n = -(-m // bm)
    rows = torch.arange(0, n * bm, bm, dtype=torch.int32, device=device)
    return torch.zeros(n, dtype=torch.int32, device=device), rows, torch.full((n,), m, dtype=torch.int32,
                                                                              device=device)


def _block_m(m: int, block_m: int | None) -> int:
    return block_m or (16 if m <= 16 else 64)


def group_tiles(x: torch.Tensor, offsets: torch.Tensor, block_m: int | None = None) -> tuple | None:
    """The row tiles of `quant_grouped` over rows x sorted by expert (offsets [E+1]): build them once and pass them
    to every quant_grouped over the same rows (a MoE's w1, w3 and w2), one host sync instead of one per GEMM.
    None where the twin runs (it takes no tiles)."""
    if not use_triton(x):
        return None
    bm = _block_m(x.shape[0], block_m)
    return (bm, *_tiles(offsets, bm))


def _launch(x, w, s, offsets, fmt: str, act_fp8: bool, block_m: int | None, block_n: int,
            tiles: tuple | None = None) -> torch.Tensor:
    x = x.contiguous()
    m, k = x.shape
    n = w.shape[-2]
    out = torch.empty(m, n, dtype=x.dtype, device=x.device)
    if m == 0 or n == 0:
        return out
    if tiles is not None:
        bm, tile_e, rows, ends = tiles
    else:
        bm = _block_m(m, block_m)
        tile_e, rows, ends = _plain_tiles(m, bm, x.device) if offsets is None else _tiles(offsets, bm)
    if len(tile_e) == 0:
        return out.zero_()
    sc, e8m0 = _scale_arg(s)
    w = w.contiguous()
    stride_we = w[0].numel() if w.dim() == 3 else 0
    stride_se = sc[0].numel() if sc.dim() == 3 else 0
    grid = (len(tile_e), triton.cdiv(n, block_n))
    _qgemm_kernel[grid](x, w.view(torch.uint8) if fmt == "fp4" else w, sc, out, tile_e, rows, ends, n, k,
                        stride_we, stride_se, -(-k // FP8_BLOCK), FP4=fmt == "fp4", ACT_FP8=act_fp8,
                        SCALE_E8M0=e8m0, IEEE=x.dtype == torch.float32, BM=bm, BN=block_n, BK=ACT_BLOCK)
    return out


def quant_linear_triton(x, w, s, fmt: str, act_fp8: bool = False, block_m: int | None = None,
                        block_n: int = 64) -> torch.Tensor:
    """Triton launch of `quant_linear`."""
    _check(x, w, s, fmt, grouped=False)
    return _launch(x, w, s, None, fmt, act_fp8, block_m, block_n)


def quant_grouped_triton(x, w, s, offsets, fmt: str, act_fp8: bool = False, block_m: int | None = None,
                         block_n: int = 64, tiles: tuple | None = None) -> torch.Tensor:
    """Triton launch of `quant_grouped`: one program per (row tile of one expert, column tile). `tiles`: from
    `group_tiles` over these rows and offsets (else built here)."""
    _check(x, w, s, fmt, grouped=True)
    check(offsets.dim() == 1 and len(offsets) == w.shape[0] + 1, f"offsets must be [E+1] = [{w.shape[0] + 1}]",
          ShapeError)
    return _launch(x, w, s, offsets, fmt, act_fp8, block_m, block_n, tiles)


##### Dispatchers #####


def quant_linear(x, w, s, fmt: str, act_fp8: bool = False) -> torch.Tensor:
    """y [M, N] = x [M, K] · dequant(w [N, K(/2)], s)ᵀ; CUDA → Triton, CPU → twin."""
    return (quant_linear_triton if use_triton(x) else quant_linear_torch)(x, w, s, fmt, act_fp8)


def quant_grouped(x, w, s, offsets, fmt: str, act_fp8: bool = False, tiles: tuple | None = None) -> torch.Tensor:
    """Rows of x [M, K] sorted by expert (offsets [E+1]) times their expert's weight w [E, N, K(/2)] → [M, N].
    `tiles`: `group_tiles(x, offsets)`, shared by the GEMMs over the same rows (the twin needs none)."""
    if use_triton(x):
        return quant_grouped_triton(x, w, s, offsets, fmt, act_fp8, tiles=tiles)
    return quant_grouped_torch(x, w, s, offsets, fmt, act_fp8)


__all__ = ["act_quant_fp8_torch", "dequant_weights", "group_tiles", "quant_grouped", "quant_grouped_torch",
           "quant_grouped_triton", "quant_linear", "quant_linear_torch", "quant_linear_triton"]
