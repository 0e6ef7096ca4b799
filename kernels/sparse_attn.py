"""Sparse attention of V4 (CSA / HCA / SWA): one softmax over window rows ∪ compressed rows, K = V, per-head sink.

Per query t (absolute position p, sequence s): rows = raw rows p-window+1..p (the window, read through the window
block table) plus compressed rows — the indexer's picks `topk_idxs[t]` (CSA, −1 = none) or every visible row
w < (p+1)//ratio (HCA). `o_h = Σ_j softmax_j(scale·q_h·k_j | sink_h) k_j`; the sink logit only enters the
denominator. Output keeps the rope part rotated: apply inverse RoPE at p before the output projection.
"""

import torch
import torch.nn.functional as F
import triton
import triton.language as tl

from . import cpu_attention
from .dispatch import use_triton
from .errors import ConfigError, check
from .layout import (
    BLOCK_TOKENS,
    check_pool,
    check_positions,
    gather_rows,
    queries_by_sequence,
    rows_per_block,
    sequence_rows,
    single_query_order,
)

##### Reference (the specification) #####


def _window_rows(positions: torch.Tensor, window: int) -> torch.Tensor:
    """Logical raw-row indices `[T, window]` of each query's window (−1 before position 0)."""
    j = positions.long()[:, None] - window + 1 + torch.arange(window, device=positions.device)
    return torch.where(j >= 0, j, -1)


def _visible_rows(positions: torch.Tensor, ratio: int) -> torch.Tensor:
    """All compressed rows `[T, n]` visible to each query (row w visible iff w < (p+1)//ratio), −1 padded."""
    nvis = (positions.long() + 1) // ratio
    idx = torch.arange(int(nvis.max().item()) if nvis.numel() else 0, device=positions.device)
    return torch.where(idx[None, :] < nvis[:, None], idx[None, :], -1)


def naive_sparse_attn(q, seq_ids, positions, win_pool, win_table, attn_sink, softmax_scale, window,
                      cmp_pool=None, cmp_table=None, ratio=0, topk_idxs=None):
    """Readable twin of `sparse_attn`: gather every attended row, one masked softmax with the sink."""
    seq = seq_ids.long()[:, None]
    idx = [_window_rows(positions, window)]
    rows = [gather_rows(win_pool, win_table, seq, idx[0])]
    if ratio:
        cidx = topk_idxs.long() if topk_idxs is not None else _visible_rows(positions, ratio)
        cidx = torch.where(cidx < ((positions.long() + 1) // ratio)[:, None], cidx, -1)   # never read unwritten rows
        idx.append(cidx)
        rows.append(gather_rows(cmp_pool, cmp_table, seq, cidx))
    kv = torch.cat(rows, 1).float()                                            # [T, N, D]
    valid = torch.cat(idx, 1) >= 0                                             # [T, N]
    s = torch.einsum("thd,tnd->thn", q.float(), kv) * softmax_scale            # [T, H, N]
    s = s.masked_fill(~valid[:, None, :], float("-inf"))
    sink = attn_sink.float()[None, :]                                          # [1, H]
    m = torch.maximum(s.amax(-1), sink)                                        # [T, H]
    e = torch.exp(s - m[..., None])
    p = e / (e.sum(-1) + torch.exp(sink - m))[..., None]
    return torch.einsum("thn,tnd->thd", p, kv).to(q.dtype)


##### CPU fast path: per sequence, chunked over queries, never [T, T] #####


def compute_dtype(x: torch.Tensor) -> torch.dtype:
    """dtype of the CPU paths' GEMMs: bf16 stays bf16 (the CPU's bf16 matmul is ≈2× fp32); anything else fp32.
    Scores and softmax are fp32 either way."""
    return torch.bfloat16 if x.dtype == torch.bfloat16 else torch.float32


def _attend_gathered(q, seq_ids, positions, win_pool, win_table, sink, scale, window, cmp_pool, cmp_table, ratio,
                     topk_idxs, budget_bytes):
    """Queries that are alone in their sequence (decode): every attended row gathered per query, one bmm pair for
    all of them (chunked over queries by budget_bytes)."""
    t, h, d = q.shape
    out, cdt = torch.empty_like(q), compute_dtype(q)
    n_rows = window + ((topk_idxs.shape[1] if topk_idxs is not None else int((positions.max() + 1) // ratio))
                       if ratio else 0)
    chunk = max(1, budget_bytes // (4 * n_rows * (d + h)))
    for c0 in range(0, t, chunk):
        sl = slice(c0, c0 + chunk)
        seq, pos = seq_ids[sl].long()[:, None], positions[sl].long()
        idx = [_window_rows(pos, window)]
        if ratio:
            cidx = topk_idxs[sl].long() if topk_idxs is not None else _visible_rows(pos, ratio)
            idx.append(torch.where(cidx < ((pos + 1) // ratio)[:, None], cidx, -1))
        kv = torch.cat([gather_rows(win_pool, win_table, seq, idx[0], False)]
                       + ([gather_rows(cmp_pool, cmp_table, seq, idx[1], False)] if ratio else []), 1).to(cdt)
        out[sl] = _attend_rows(q[sl].to(cdt), kv, torch.cat(idx, 1) >= 0, sink, scale).to(q.dtype)
    return out


def _log_weights(mask: torch.Tensor) -> torch.Tensor:
    """A bool mask (0 / −inf) or pick counts (log c: a row picked twice weighs twice, −inf for none) as additive
    score biases [Tq, n] fp32."""
    if mask.dtype == torch.bool:
        return torch.zeros(mask.shape, device=mask.device).masked_fill_(~mask, float("-inf"))
    return mask.float().log()


def _attend_shared(qc, keys, logw, sink, scale):
    """Queries qc [Tq, H, D] over rows shared by the chunk, keys [n, D] (K = V), logw [Tq, n] additive biases
    (_log_weights): one fused scaled_dot_product_attention with the heads folded into the query axis; the sink is
    one more key, a zero row whose additive bias is the head's sink logit (it enters the denominator, adds no value)."""
    tq, h, d = qc.shape
    n = keys.shape[0]
    k = torch.cat([keys, keys.new_zeros(1, d)])[None, None]                   # [1, 1, n + 1, D]
    bias = torch.empty(tq, h, n + 1, dtype=qc.dtype, device=qc.device)
    bias[..., :n] = logw.to(qc.dtype)[:, None, :]
    bias[..., n] = sink.to(qc.dtype)
    o = F.scaled_dot_product_attention(qc.reshape(1, 1, tq * h, d), k, k, attn_mask=bias.view(1, 1, tq * h, n + 1),
                                       scale=scale)
    return o.view(tq, h, d).float()


def _attend_rows(qc, kv, allowed, sink, scale):
    """Queries qc [T, H, D] each over its own rows kv [T, N, D] (K = V), allowed [T, N]: one batched fused
    scaled_dot_product_attention (batch = queries, the heads as its query rows), the sink as a zero row whose
    additive bias is the head's sink logit."""
    t, h, d = qc.shape
    n = kv.shape[1]
    k = torch.cat([kv, kv.new_zeros(t, 1, d)], 1)[:, None]                   # [T, 1, N + 1, D]
    bias = torch.empty(t, h, n + 1, dtype=qc.dtype, device=qc.device)
    bias[..., :n] = torch.zeros(1, dtype=qc.dtype).masked_fill(~allowed, float("-inf"))[:, None, :]
    bias[..., n] = sink.to(qc.dtype)
    return F.scaled_dot_product_attention(qc[:, None], k, k, attn_mask=bias[:, None], scale=scale)[:, 0].float()


def _topk_rows(rows: torch.Tensor, idx: torch.Tensor, valid: torch.Tensor, k: int, union_factor: float):
    """The CSA picks of a query chunk (idx [Tq, K], valid [Tq, K]) as (rows to attend, mask): either

    rows [U, D] = the union of the chunk's picks and mask = float pick counts [Tq, U] (one attention over the
    union for the chunk, used when it is at most union_factor·K rows); else rows [Tq, K, D] gathered per query and
    mask = valid."""
    sentinel = rows.shape[0]
    vidx = torch.where(valid, idx, sentinel)
    present = torch.zeros(sentinel + 1, dtype=torch.bool, device=idx.device).index_fill_(0, vidx.flatten(), True)
    u = present[:sentinel].nonzero().squeeze(1)                               # the union, ascending (no sort)
    if u.numel() <= union_factor * k:
        slot = torch.full((sentinel + 1,), u.numel(), dtype=torch.long, device=idx.device)
        slot[u] = torch.arange(u.numel(), device=idx.device)                   # row -> column of the union
        sel = torch.zeros(idx.shape[0], u.numel() + 1, device=idx.device)
        sel.scatter_add_(1, slot[vidx], torch.ones(vidx.shape, device=idx.device))
        return rows.index_select(0, u), sel[:, :-1]
    kc = rows.index_select(0, idx.clamp_min(0).flatten()).view(*idx.shape, rows.shape[1])   # −1: row 0, masked
    return kc, valid


def sparse_attn_torch(q, seq_ids, positions, win_pool, win_table, attn_sink, softmax_scale, window,
                      cmp_pool=None, cmp_table=None, ratio=0, topk_idxs=None, budget_bytes=64 << 20,
                      max_chunk=64, union_factor=6.0, native=True):
    """The CPU path. Where kernels.cpu_attention applies (fp32, AVX-512; native=False turns it off for tests), every
    query reads its own rows in place, in C. Otherwise vectorized plain torch on torch's fused attention:
    per sequence, chunks of ≤ max_chunk queries attend
    rows shared by the chunk (the window band, the HCA rows it can see, or the union of its CSA picks while that is
    ≤ union_factor·K rows) in one call, or (CSA beyond that) each query's own window and gathered picks in one
    batched call. Sequences with one query (decode) are batched together, every row gathered per query. Memory per
    chunk bounded by budget_bytes."""
    t, h, d = q.shape
    sink = attn_sink.float()
    if native:
        out = cpu_attention.attend(q, seq_ids, positions, win_pool, win_table, sink, softmax_scale, window, cmp_pool,
                                   cmp_table, ratio, topk_idxs)
        if out is not None:
            return out
    out, cdt = torch.empty_like(q), compute_dtype(q)
    alone = single_query_order(seq_ids)  # every query alone in its sequence (decode): all go the gathered way
    singles = [alone] if alone is not None else []
    for s, qi, pos in queries_by_sequence(seq_ids, positions) if alone is None else ():
        if qi.numel() == 1:
            singles.append(qi)
            continue
        ncmp = rows = None
        if ratio:
            ncmp = int((pos[-1] + 1) // ratio)
            rows = sequence_rows(cmp_pool, cmp_table[s], ncmp).to(cdt) if ncmp else None    # [Nc, D], once
        kq = (topk_idxs.shape[1] if topk_idxs is not None else ncmp) if ratio else 0
        per_query = h * (window + kq + 64) * 4 + (kq * d * 4 if topk_idxs is not None else 0)
        # NOTE: the window band of a chunk spans chunk + window − 1 rows, so cap the chunk (≤ 1.5× band overhead)
        chunk = max(1, min(qi.numel(), max_chunk, budget_bytes // max(per_query, 1)))
        seq_t = torch.tensor(s, device=q.device)
        for c0, c1 in _chunks(pos.tolist(), chunk, chunk + window):
            ci, p = qi[c0:c1], pos[c0:c1]
            qc = q[ci].to(cdt)                                                  # [Tq, H, D]
            lo, hi = max(0, int(p[0]) - window + 1), int(p[-1]) + 1
            j = torch.arange(lo, hi, device=q.device)
            band = gather_rows(win_pool, win_table, seq_t, j, False).to(cdt)   # [band, D]
            bmask = (j[None, :] <= p[:, None]) & (j[None, :] > p[:, None] - window)     # [Tq, band]
            keys, masks = [band], [bmask]                                      # shared rows [n, D] or per query
            nvis = (p + 1) // ratio if ratio else None
            if ratio and topk_idxs is not None and rows is not None:
                idx = topk_idxs[ci].long()
                valid = (idx >= 0) & (idx < nvis[:, None])
                kc, mask = _topk_rows(rows, idx, valid, idx.shape[1], union_factor)
                keys.append(kc)
                masks.append(mask)
            elif ratio and rows is not None and int(nvis[-1]):
                keys.append(rows[:int(nvis[-1])])                                # rows this chunk can see
                masks.append(torch.arange(keys[-1].shape[0], device=q.device)[None, :] < nvis[:, None])
            if all(k.dim() == 2 for k in keys):
                o = _attend_shared(qc, torch.cat(keys), torch.cat([_log_weights(m) for m in masks], -1), sink,
                                   softmax_scale)
            else:  # CSA picks gathered per query: each query's own window rows beside them
                start = p - window + 1 - lo                                     # band index of its first row
                pad = max(0, -int(start[0]))
                win = (F.pad(band, (0, 0, pad, 0)) if pad else band).unfold(0, window, 1)[start + pad]
                wmask = (p[:, None] - window + 1 + torch.arange(window, device=q.device)) >= 0
                o = _attend_rows(qc, torch.cat([win.transpose(1, 2), keys[1]], 1), torch.cat([wmask, masks[1]], 1),
                                 sink, softmax_scale)
            out[ci] = o.to(q.dtype)
    if singles:
        qi = torch.cat(singles)
        out[qi] = _attend_gathered(q[qi], seq_ids[qi], positions[qi], win_pool, win_table, sink, softmax_scale,
                                   window, cmp_pool, cmp_table, ratio, topk_idxs[qi] if topk_idxs is not None
                                   else None, budget_bytes)
    return out


def _chunks(sorted_pos: list[int], size: int, span: int):
    """[start, end) runs of at most `size` queries whose positions lie within `span` (bounds the window band)."""
    start = 0
    for i, p in enumerate(sorted_pos):
        if i - start >= size or p - sorted_pos[start] >= span:
            yield start, i
            start = i
    if sorted_pos:
        yield start, len(sorted_pos)


##### Triton kernel #####


@triton.jit
def _attn_block(q, k, valid, m_i, l_i, acc, scale):
    """One online-softmax step over a [BLOCK_N, BLOCK_D] tile of rows (K = V); a split may start at m = −inf."""
    s = tl.dot(q, tl.trans(k)).to(tl.float32) * scale                         # [BLOCK_H, BLOCK_N]
    s = tl.where(valid[None, :], s, float("-inf"))
    m_new = tl.maximum(m_i, tl.max(s, 1))
    m_safe = tl.where(m_new == float("-inf"), 0.0, m_new)                      # no row yet: keep l = acc = 0
    alpha = tl.exp(m_i - m_safe)
    p = tl.exp(s - m_safe[:, None])
    l_i = l_i * alpha + tl.sum(p, 1)
    acc = acc * alpha[:, None] + tl.dot(p.to(k.dtype), k).to(tl.float32)
    return m_new, l_i, acc


@triton.jit
def _sparse_attn_kernel(Q, O, WIN, WBT, CMP, CBT, TOPK, SEQ, POS, SINK, M_PART, L_PART,
                        stride_qt, stride_qh, stride_ot, stride_oh, stride_wbt, stride_cbt, stride_tk,
                        H, D, K_SEL, WINDOW, RATIO, NUM_SPLITS, scale,
                        WIN_RPB: tl.constexpr, CMP_RPB: tl.constexpr, HAS_CMP: tl.constexpr, HAS_TOPK: tl.constexpr,
                        SPLIT: tl.constexpr,
                        BLOCK_H: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr):
    t = tl.program_id(0)
    offs_h = tl.program_id(1) * BLOCK_H + tl.arange(0, BLOCK_H)
    split = tl.program_id(2)
    offs_n = tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, BLOCK_D)
    hmask, dmask = offs_h < H, offs_d < D
    seq = tl.load(SEQ + t).to(tl.int64)
    pos = tl.load(POS + t)
    q = tl.load(Q + t * stride_qt + offs_h[:, None] * stride_qh + offs_d[None, :],
                mask=hmask[:, None] & dmask[None, :], other=0.0)               # [BLOCK_H, BLOCK_D]
    # -- this program's slice [r_lo, r_hi) of the row list: window rows 0..WINDOW-1, then compressed entries
    nvis = (pos + 1) // RATIO
    n_cmp = 0
    if HAS_CMP:
        if HAS_TOPK:
            n_cmp = K_SEL
        else:
            n_cmp = nvis
    per = tl.cdiv(tl.cdiv(WINDOW + n_cmp, NUM_SPLITS), BLOCK_N) * BLOCK_N
    r_lo = split * per
    r_hi = tl.minimum(r_lo + per, WINDOW + n_cmp)
    # -- split 0 seeds the running max and denominator with the sink: exp(sink - m), zero value
    sink = tl.load(SINK + offs_h, mask=hmask, other=0.0).to(tl.float32)
    m_i = tl.where(split == 0, sink, float("-inf"))
    l_i = tl.where(split == 0, 1.0, 0.0) + tl.zeros([BLOCK_H], tl.float32)
    acc = tl.zeros([BLOCK_H, BLOCK_D], tl.float32)
    # -- window rows pos-WINDOW+1 .. pos (raw pool, WIN_RPB = BLOCK_TOKENS rows per block)
    lo = pos - WINDOW + 1
    for start in range(r_lo, tl.minimum(r_hi, WINDOW), BLOCK_N):
        r = start + offs_n
        j = lo + r
        valid = (j >= 0) & (r < tl.minimum(r_hi, WINDOW))
        jc = tl.maximum(j, 0)
        blk = tl.load(WBT + seq * stride_wbt + jc // WIN_RPB, mask=valid, other=0).to(tl.int64)
        row = blk * WIN_RPB + jc % WIN_RPB
        k = tl.load(WIN + row[:, None] * D + offs_d[None, :], mask=valid[:, None] & dmask[None, :], other=0.0)
        m_i, l_i, acc = _attn_block(q, k, valid, m_i, l_i, acc, scale)
    # -- compressed rows: indexer picks (CSA) or every visible row (HCA)
    if HAS_CMP:
        c_lo = tl.maximum(r_lo, WINDOW) - WINDOW
        c_hi = r_hi - WINDOW
        for start in range(c_lo, c_hi, BLOCK_N):
            n = start + offs_n
            if HAS_TOPK:
                idx = tl.load(TOPK + t * stride_tk + n, mask=n < c_hi, other=-1)
                valid = (idx >= 0) & (idx < nvis)
            else:
                idx = n
                valid = n < c_hi
            ic = tl.maximum(idx, 0)
            blk = tl.load(CBT + seq * stride_cbt + ic // CMP_RPB, mask=valid, other=0).to(tl.int64)
            row = blk * CMP_RPB + ic % CMP_RPB
            k = tl.load(CMP + row[:, None] * D + offs_d[None, :], mask=valid[:, None] & dmask[None, :], other=0.0)
            m_i, l_i, acc = _attn_block(q, k, valid, m_i, l_i, acc, scale)
    out_ptr = O + t * stride_ot + offs_h[:, None] * stride_oh + offs_d[None, :]
    if SPLIT:  # partial (m, l, unnormalized acc) per split; O is fp32 [T, NUM_SPLITS, H, D] here
        out_ptr += split * H * D
        tl.store(M_PART + (t * NUM_SPLITS + split) * H + offs_h, m_i, mask=hmask)
        tl.store(L_PART + (t * NUM_SPLITS + split) * H + offs_h, l_i, mask=hmask)
        tl.store(out_ptr, acc, mask=hmask[:, None] & dmask[None, :])
    else:
        tl.store(out_ptr, (acc / l_i[:, None]).to(O.dtype.element_ty), mask=hmask[:, None] & dmask[None, :])


def _check(q, seq_ids, positions, win_pool, win_table, attn_sink, window, cmp_pool, cmp_table, ratio, topk_idxs):
    check(q.dim() == 3, f"q must be [T, H, D], got {tuple(q.shape)}")
    t, h, d = q.shape
    check(q.stride(-1) == 1, "q must be contiguous in its last dim")
    check_positions(seq_ids, positions, t, q.device)
    check(window >= 1, f"window must be >= 1, got {window}", ConfigError)
    check_pool(win_pool, win_table, BLOCK_TOKENS, "window")
    check(win_pool.shape[2] == d and win_pool.dtype == q.dtype,
          f"window pool must be [nb, {BLOCK_TOKENS}, D] in q's dtype")
    check(attn_sink.shape == (h,), f"attn_sink must be [{h}], got {tuple(attn_sink.shape)}")
    if ratio:
        check_pool(cmp_pool, cmp_table, rows_per_block(ratio), "compressed")
        check(cmp_pool.shape[2] == d and cmp_pool.dtype == q.dtype, "compressed pool must match q's D and dtype")
        if topk_idxs is not None:
            check(topk_idxs.dim() == 2 and topk_idxs.shape[0] == t and topk_idxs.dtype == torch.int32,
                  "topk_idxs must be int32 [T, K]")
    else:
        check(topk_idxs is None, "topk_idxs needs ratio > 0", ConfigError)


def _auto_splits(q, positions, window, ratio, topk_idxs, programs: int) -> int:
    """Split the row list when too few programs would run (decode): aim at ~2 programs per SM, ≥ 256 rows each."""
    if not q.is_cuda or programs >= 256:
        return 1
    rows = window + (topk_idxs.shape[1] if topk_idxs is not None else
                     (int(positions.max().item()) + 1) // ratio if ratio else 0)
    sms = torch.cuda.get_device_properties(q.device).multi_processor_count
    return max(1, min(triton.cdiv(2 * sms, programs), triton.cdiv(rows, 256)))


def sparse_attn_triton(q, seq_ids, positions, win_pool, win_table, attn_sink, softmax_scale, window,
                       cmp_pool=None, cmp_table=None, ratio=0, topk_idxs=None, num_splits=None, block_h=None):
    """Launch the Triton kernel (CUDA, or CPU under TRITON_INTERPRET=1). Shapes as in `sparse_attn`.
    num_splits > 1 splits each query's rows over programs (split-KV, for decode) and merges the partials;
    block_h = heads per program (≥ 16; default 16 at D > 256, where each head block re-reads the rows)."""
    _check(q, seq_ids, positions, win_pool, win_table, attn_sink, window, cmp_pool, cmp_table, ratio, topk_idxs)
    t, h, d = q.shape
    o = torch.empty_like(q)
    if t == 0:
        return o
    block_d = max(16, triton.next_power_of_2(d))
    block_h = block_h or (16 if block_d > 256 else max(16, min(64, triton.next_power_of_2(h))))
    check(block_h >= 16 and block_h & (block_h - 1) == 0, f"block_h must be a power of two >= 16, got {block_h}",
          ConfigError)
    has_cmp, has_topk = bool(ratio), topk_idxs is not None
    cmp_pool = cmp_pool if has_cmp else win_pool
    cmp_table = cmp_table if has_cmp else win_table
    topk = topk_idxs if has_topk else seq_ids.view(t, 1)
    hb = triton.cdiv(h, block_h)
    ns = num_splits or _auto_splits(q, positions, window, ratio, topk_idxs, t * hb)
    split = ns > 1
    out = torch.empty(t, ns, h, d, dtype=torch.float32, device=q.device) if split else o
    m_part = torch.empty(t, ns, h, dtype=torch.float32, device=q.device) if split else o
    l_part = torch.empty_like(m_part) if split else o
    _sparse_attn_kernel[(t, hb, ns)](
        q, out, win_pool, win_table, cmp_pool, cmp_table, topk, seq_ids, positions, attn_sink.float().contiguous(),
        m_part, l_part,
        q.stride(0), q.stride(1), out.stride(0), out.stride(-2), win_table.stride(0), cmp_table.stride(0),
        topk.stride(0), h, d, topk.shape[1], window, max(ratio, 1), ns, float(softmax_scale),
        WIN_RPB=BLOCK_TOKENS, CMP_RPB=rows_per_block(ratio) if has_cmp else 1, HAS_CMP=has_cmp, HAS_TOPK=has_topk,
        SPLIT=split, BLOCK_H=block_h, BLOCK_N=32, BLOCK_D=block_d, num_warps=4 if block_d <= 256 else 8)
    if split:  # -- merge: o = Σ_s e^(m_s − M) acc_s / Σ_s e^(m_s − M) l_s (split 0 holds the sink, so M is finite)
        w = torch.exp(m_part - m_part.amax(1, keepdim=True))                   # [T, S, H]
        o.copy_(((w[..., None] * out).sum(1) / (w * l_part).sum(1)[..., None]).to(q.dtype))
    return o


def sparse_attn(q, seq_ids, positions, win_pool, win_table, attn_sink, softmax_scale, window,
                cmp_pool=None, cmp_table=None, ratio=0, topk_idxs=None):
    """V4 sparse attention; CUDA → Triton, CPU → `sparse_attn_torch` (`kernels.dispatch.use_triton`).

    q `[T, H, D]` (rotated), seq_ids/positions int32 `[T]` (row of the block tables, absolute position),
    win_pool `[nb, BLOCK_TOKENS, D]` raw rows + win_table int32 `[B, nblk]` (indexed by position // BLOCK_TOKENS;
    the window rows of the current chunk must be readable: for a prefill chunk, a pool of the earlier ≤ 127 rows
    and the fresh rows, blocks aligned to BLOCK_TOKENS), attn_sink fp32 `[H]`, window (e.g. 128).
    ratio 0: SWA only. ratio > 0: cmp_pool `[nb, BLOCK_TOKENS//ratio, D]` + cmp_table int32 `[B, nblk]`, and
    topk_idxs int32 `[T, K]` (CSA, −1 = none) or None (HCA: all visible rows). Returns o `[T, H, D]`.
    """
    if use_triton(q):
        return sparse_attn_triton(q, seq_ids, positions, win_pool, win_table, attn_sink, softmax_scale, window,
                                  cmp_pool, cmp_table, ratio, topk_idxs)
    _check(q, seq_ids, positions, win_pool, win_table, attn_sink, window, cmp_pool, cmp_table, ratio, topk_idxs)
    return sparse_attn_torch(q, seq_ids, positions, win_pool, win_table, attn_sink, softmax_scale, window,
                             cmp_pool, cmp_table, ratio, topk_idxs)

