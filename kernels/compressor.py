"""Compressor of V4 (CSA / HCA): gated per-channel softmax pooling of m = ratio tokens into one row, fused with the
row RMSNorm (weighted) and RoPE at the window's first position w·m.

Inputs are the projections `kv = wkv_c·x` and gate `score = wgate_c·x` (fp32, `ape[pos % m]` is added here) of a
token buffer per sequence. CSA (overlap): channels are two halves A = [:D], B = [D:]; row w pools the A-half of
window w−1 and the B-half of window w (8 slots; w = 0 has no A slots). HCA: row w pools window w (D channels).
Prefill and decode are the same call: a decode buffer is the open state (carry window + partial window) plus the
new token, and the row is emitted when the window's last token arrives.
"""

import torch
import triton
import triton.language as tl

from .dispatch import use_triton
from .errors import ConfigError, ShapeError, check
from .layout import check_pool, flat_rows, rows_per_block

##### Row descriptors (host side, shared by every path) #####


def plan_rows(cu_seqlens, start_pos, first_window, ratio: int, overlap: bool):
    """Rows to emit: (row_seq, row_win, b_tok, a_tok) int64 `[R]`; a_tok = −1 when a row has no A slots.

    Sequence b's buffer is tokens cu_seqlens[b]:cu_seqlens[b+1] at positions start_pos[b]… (a multiple of ratio);
    it emits every window w >= first_window[b] whose last token is in the buffer. Windows before first_window
    are carry (already emitted) and only feed the A slots of the next row.
    """
    cu, sp, fw = cu_seqlens.tolist(), start_pos.tolist(), first_window.tolist()
    counts, shift, base, emitted = [], [], [], 0  # per sequence: rows, (first row index − first window), token base
    for b in range(len(sp)):
        n, p0, f = cu[b + 1] - cu[b], sp[b], fw[b]
        check(p0 % ratio == 0 and p0 >= 0, f"start_pos[{b}]={p0} must be a multiple of ratio {ratio}", ConfigError)
        k = max(f, (p0 + n) // ratio) - f
        if k:
            check(f * ratio >= p0, f"sequence {b}: window {f} starts before its buffer (start_pos {p0})", ConfigError)
            if overlap:
                check(f == 0 or (f - 1) * ratio >= p0,
                      f"sequence {b}: row {f} needs the carry window {f - 1} in its buffer", ConfigError)
        counts.append(k)
        shift.append(emitted - f)
        base.append(cu[b] - p0)
        emitted += k
    dev = cu_seqlens.device
    # a few ops for all sequences: row r of sequence b is window r − shift[b]; its B slots start at base[b] + w·m
    seqs = torch.repeat_interleave(torch.tensor(counts, dtype=torch.int64))
    per = torch.tensor([shift, base], dtype=torch.int64)[:, seqs]
    wins = torch.arange(emitted, dtype=torch.int64) - per[0]
    btok = per[1] + wins * ratio
    atok = torch.where(wins > 0, btok - ratio, -1) if overlap else torch.full_like(btok, -1)
    return seqs.to(dev), wins.to(dev), btok.to(dev), atok.to(dev)


def open_state_start(end_pos: int, ratio: int, overlap: bool) -> int:
    """First position the open state must keep after positions < end_pos were compressed (next buffer start)."""
    return max(0, (end_pos // ratio - int(overlap)) * ratio)


def _rope_rows(wins, ratio, cos, rope_offset, rope_dim):
    """Table rows w·ratio − rope_offset of the emitted windows; ConfigError when the tables don't cover them."""
    rows = wins * ratio - rope_offset
    if rope_dim and rows.numel():
        lo, hi = int(rows.min()), int(rows.max())
        check(lo >= 0 and hi < cos.shape[0], f"rope tables (rows {rope_offset}…{rope_offset + cos.shape[0] - 1}) "
              f"don't cover positions {lo + rope_offset}…{hi + rope_offset}", ConfigError)
    return rows


def _norm_rope(x, norm_weight, cos, sin, pos, rope_dim, eps):
    """Weighted RMSNorm then interleaved-pair RoPE on the last rope_dim channels; pos = table rows. x `[R, D]` fp32."""
    x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * norm_weight.float()
    if rope_dim:
        c, s = cos[pos].float(), sin[pos].float()                                  # [R, rd/2]
        xr = x[:, -rope_dim:].unflatten(-1, (-1, 2))
        e, o = xr[..., 0], xr[..., 1]
        x = torch.cat([x[:, :-rope_dim], torch.stack([e * c - o * s, e * s + o * c], -1).flatten(-2)], -1)
    return x


##### Reference #####


def naive_compressor(kv, score, ape, norm_weight, cos, sin, cu_seqlens, start_pos, first_window, *,
                     ratio, overlap, rope_dim, eps=1e-6, rope_offset=0):
    """Readable twin: one row at a time, REF's slot layout (A-half of w−1 then B-half of w)."""
    d = norm_weight.shape[0]
    seqs, wins, btok, atok = plan_rows(cu_seqlens, start_pos, first_window, ratio, overlap)
    z = score.float()
    rows = []
    for bt, at in zip(btok.tolist(), atok.tolist()):
        half = slice(d, 2 * d) if overlap else slice(0, d)
        c = kv[bt:bt + ratio, half].float()
        g = z[bt:bt + ratio, half] + ape[:, half]
        if at >= 0:
            c = torch.cat([kv[at:at + ratio, :d].float(), c])
            g = torch.cat([z[at:at + ratio, :d] + ape[:, :d], g])
        rows.append((c * g.softmax(0)).sum(0))                                     # per-channel softmax over slots
    x = torch.stack(rows) if rows else kv.new_zeros(0, d, dtype=torch.float32)
    pos = _rope_rows(wins, ratio, cos, rope_offset, rope_dim)
    return _norm_rope(x, norm_weight, cos, sin, pos, rope_dim, eps), seqs.to(torch.int32), wins.to(torch.int32)


##### CPU fast path #####


def compressor_torch(kv, score, ape, norm_weight, cos, sin, cu_seqlens, start_pos, first_window, *,
                     ratio, overlap, rope_dim, eps=1e-6, rope_offset=0, budget_bytes=128 << 20):
    """Vectorized: gather `[R, slots, D]` windows in row chunks, softmax over slots, norm + RoPE."""
    d = norm_weight.shape[0]
    seqs, wins, btok, atok = (x.to(kv.device) for x in plan_rows(cu_seqlens, start_pos, first_window, ratio, overlap))
    pos = _rope_rows(wins, ratio, cos, rope_offset, rope_dim)
    out = torch.empty(wins.numel(), d, dtype=torch.float32, device=kv.device)
    slots = torch.arange(ratio, device=kv.device)
    boff = d if overlap else 0
    chunk = max(1, budget_bytes // (2 * ratio * (1 + int(overlap)) * d * 4 * 2))
    for r0 in range(0, wins.numel(), chunk):
        bt, at = btok[r0:r0 + chunk, None] + slots, atok[r0:r0 + chunk, None] + slots   # [Rc, m]
        c = kv[bt, boff:boff + d].float()                                           # [Rc, m, D]
        g = score[bt, boff:boff + d].float() + ape[None, :, boff:boff + d]
        if overlap:
            has_a = (atok[r0:r0 + chunk] >= 0)[:, None, None]
            ca = kv[at.clamp_min(0), :d].float()
            ga = (score[at.clamp_min(0), :d].float() + ape[None, :, :d]).masked_fill(~has_a, float("-inf"))
            c, g = torch.cat([ca, c], 1), torch.cat([ga, g], 1)
        out[r0:r0 + chunk] = (c * g.softmax(1)).sum(1)
    out = _norm_rope(out, norm_weight, cos, sin, pos, rope_dim, eps)
    return out, seqs.to(torch.int32), wins.to(torch.int32)


##### Triton kernel: one program per row, online per-channel softmax over slot tiles #####


@triton.jit
def _pool_half(KV, SC, APE, tok0, ch0, C, RATIO, offs_p, pmask, m_e, l_e, a_e, m_o, l_o, a_o,
               BLOCK_S: tl.constexpr):
    offs_s = tl.arange(0, BLOCK_S)
    for s0 in range(0, RATIO, BLOCK_S):
        s = s0 + offs_s
        col = ch0 + 2 * offs_p[None, :]
        src = (tok0 + s).to(tl.int64)[:, None] * C + col                           # [BLOCK_S, BLOCK_P]
        ape = s[:, None] * C + col
        msk = pmask[None, :] & (s[:, None] < RATIO)
        kv_e = tl.load(KV + src, mask=msk, other=0.0).to(tl.float32)
        kv_o = tl.load(KV + src + 1, mask=msk, other=0.0).to(tl.float32)
        z_e = tl.load(SC + src, mask=msk, other=0.0).to(tl.float32) + tl.load(APE + ape, mask=msk, other=0.0)
        z_o = tl.load(SC + src + 1, mask=msk, other=0.0).to(tl.float32) + tl.load(APE + ape + 1, mask=msk, other=0.0)
        # -- per-channel online softmax (even and odd channels kept apart for the RoPE pairs)
        mn_e = tl.maximum(m_e, tl.max(z_e, 0))
        mn_o = tl.maximum(m_o, tl.max(z_o, 0))
        p_e = tl.exp(z_e - mn_e[None, :])
        p_o = tl.exp(z_o - mn_o[None, :])
        al_e, al_o = tl.exp(m_e - mn_e), tl.exp(m_o - mn_o)
        l_e = l_e * al_e + tl.sum(p_e, 0)
        l_o = l_o * al_o + tl.sum(p_o, 0)
        a_e = a_e * al_e + tl.sum(p_e * kv_e, 0)
        a_o = a_o * al_o + tl.sum(p_o * kv_o, 0)
        m_e, m_o = mn_e, mn_o
    return m_e, l_e, a_e, m_o, l_o, a_o


@triton.jit
def _compressor_kernel(KV, SC, APE, NW, COS, SIN, BTOK, ATOK, WIN, DST, OUT,
                       C, D, RATIO, B_OFF, ROPE_PAIRS, ROPE_OFF, stride_cos, eps,
                       BLOCK_P: tl.constexpr, BLOCK_S: tl.constexpr):
    r = tl.program_id(0)
    offs_p = tl.arange(0, BLOCK_P)                                             # channel pair index
    pmask = offs_p < D // 2
    bt = tl.load(BTOK + r)
    at = tl.load(ATOK + r)
    m_e = tl.full([BLOCK_P], float("-inf"), tl.float32)
    m_o = tl.full([BLOCK_P], float("-inf"), tl.float32)
    l_e = tl.zeros([BLOCK_P], tl.float32)
    l_o = tl.zeros([BLOCK_P], tl.float32)
    a_e = tl.zeros([BLOCK_P], tl.float32)
    a_o = tl.zeros([BLOCK_P], tl.float32)
    if at >= 0:  # A-half of the previous window (CSA overlap)
        m_e, l_e, a_e, m_o, l_o, a_o = _pool_half(KV, SC, APE, at, 0, C, RATIO, offs_p, pmask,
                                                  m_e, l_e, a_e, m_o, l_o, a_o, BLOCK_S)
    m_e, l_e, a_e, m_o, l_o, a_o = _pool_half(KV, SC, APE, bt, B_OFF, C, RATIO, offs_p, pmask,
                                              m_e, l_e, a_e, m_o, l_o, a_o, BLOCK_S)
    e = tl.where(pmask, a_e / l_e, 0.0)
    o = tl.where(pmask, a_o / l_o, 0.0)
    # -- weighted RMSNorm over the D channels
    rstd = tl.math.rsqrt((tl.sum(e * e, 0) + tl.sum(o * o, 0)) / D + eps)
    e = e * rstd * tl.load(NW + 2 * offs_p, mask=pmask, other=0.0).to(tl.float32)
    o = o * rstd * tl.load(NW + 2 * offs_p + 1, mask=pmask, other=0.0).to(tl.float32)
    # -- interleaved RoPE on the last ROPE_PAIRS pairs at position w·ratio, table row w·ratio − ROPE_OFF
    i = offs_p - (D // 2 - ROPE_PAIRS)
    rmask = pmask & (i >= 0)
    pos = (tl.load(WIN + r) * RATIO - ROPE_OFF).to(tl.int64)
    c = tl.load(COS + pos * stride_cos + i, mask=rmask, other=1.0)
    s = tl.load(SIN + pos * stride_cos + i, mask=rmask, other=0.0)
    e, o = e * c - o * s, e * s + o * c
    dst = tl.load(DST + r)
    tl.store(OUT + dst * D + 2 * offs_p, e.to(OUT.dtype.element_ty), mask=pmask)
    tl.store(OUT + dst * D + 2 * offs_p + 1, o.to(OUT.dtype.element_ty), mask=pmask)


def _check(kv, score, ape, norm_weight, cos, sin, cu_seqlens, start_pos, first_window, ratio, overlap, rope_dim):
    d = norm_weight.shape[0]
    coff = 2 if overlap else 1
    rows_per_block(ratio)  # ConfigError unless ratio divides BLOCK_TOKENS
    check(d % 2 == 0 and rope_dim % 2 == 0 and 0 <= rope_dim <= d, f"D {d} / rope_dim {rope_dim} must be even, rd<=D",
          ConfigError)
    check(kv.dim() == 2 and kv.shape[1] == coff * d and score.shape == kv.shape,
          f"kv and score must be [N, {coff * d}], got {tuple(kv.shape)} / {tuple(score.shape)}")
    check(kv.is_contiguous() and score.is_contiguous(), "kv and score must be contiguous")
    check(ape.shape == (ratio, coff * d) and ape.dtype == torch.float32, f"ape must be fp32 [{ratio}, {coff * d}]")
    check(cos.shape == sin.shape and cos.dim() == 2 and cos.shape[1] == rope_dim // 2,
          f"cos/sin must be [max_pos, {rope_dim // 2}]")
    b = start_pos.numel()
    check(cu_seqlens.shape == (b + 1,) and first_window.shape == (b,), "cu_seqlens [B+1], start_pos/first_window [B]")
    check(int(cu_seqlens[-1]) == kv.shape[0], f"cu_seqlens[-1] must equal {kv.shape[0]} tokens")


def compressor_triton(kv, score, ape, norm_weight, cos, sin, cu_seqlens, start_pos, first_window, *,
                      ratio, overlap, rope_dim, eps=1e-6, rope_offset=0, out=None):
    """Launch the Triton kernel; rows go to `out` `[R, D]` (allocated) — see `compressor` for shapes."""
    _check(kv, score, ape, norm_weight, cos, sin, cu_seqlens, start_pos, first_window, ratio, overlap, rope_dim)
    d = norm_weight.shape[0]
    seqs, wins, btok, atok = (x.to(kv.device) for x in plan_rows(cu_seqlens, start_pos, first_window, ratio, overlap))
    rows = torch.empty(wins.numel(), d, dtype=torch.float32, device=kv.device)
    if wins.numel():
        _rope_rows(wins, ratio, cos, rope_offset, rope_dim)
        block_p = triton.next_power_of_2(d // 2)
        _compressor_kernel[(wins.numel(),)](
            kv, score, ape.contiguous(), norm_weight.contiguous(), cos.contiguous(), sin.contiguous(),
            btok, atok, wins, torch.arange(wins.numel(), device=kv.device), rows,
            kv.shape[1], d, ratio, d if overlap else 0, rope_dim // 2, rope_offset, cos.stride(0), eps,
            BLOCK_P=block_p, BLOCK_S=min(ratio, 8 if block_p >= 256 else 16))
    return rows, seqs.to(torch.int32), wins.to(torch.int32)


def compressor(kv, score, ape, norm_weight, cos, sin, cu_seqlens, start_pos, first_window, *,
               ratio, overlap, rope_dim, eps=1e-6, rope_offset=0):
    """Compressed rows of every window closed in the buffers; CUDA → Triton, CPU → `compressor_torch`.

    kv, score `[N, coff·D]` (coff = 2 if overlap), ape fp32 `[ratio, coff·D]`, norm_weight `[D]`, cos/sin
    `[P, rope_dim/2]` (row i = position rope_offset + i), cu_seqlens int `[B+1]` (buffers packed), start_pos `[B]`
    (position of each buffer's first token, a multiple of ratio), first_window `[B]` (rows already emitted). Returns
    (rows fp32 `[R, D]`, row_seq int32 `[R]`, row_win int32 `[R]`); store them with `write_rows`.
    """
    if use_triton(kv):
        return compressor_triton(kv, score, ape, norm_weight, cos, sin, cu_seqlens, start_pos, first_window,
                                 ratio=ratio, overlap=overlap, rope_dim=rope_dim, eps=eps, rope_offset=rope_offset)
    _check(kv, score, ape, norm_weight, cos, sin, cu_seqlens, start_pos, first_window, ratio, overlap, rope_dim)
    return compressor_torch(kv, score, ape, norm_weight, cos, sin, cu_seqlens, start_pos, first_window,
                            ratio=ratio, overlap=overlap, rope_dim=rope_dim, eps=eps, rope_offset=rope_offset)


def write_rows(pool, table, row_seq, row_win, rows, ratio: int) -> None:
    """Store rows `[R, D]` into pool `[nb, BLOCK_TOKENS//ratio, D]` through the block table (row w of sequence s)."""
    rpb = rows_per_block(ratio)
    check_pool(pool, table, rpb, "compressed")
    if rows.shape[0]:
        if rows.shape[1] != pool.shape[2]:
            raise ShapeError(f"rows have D={rows.shape[1]}, pool has {pool.shape[2]}")
        pool.view(-1, pool.shape[2])[flat_rows(table, row_seq, row_win, rpb)] = rows.to(pool.dtype)
