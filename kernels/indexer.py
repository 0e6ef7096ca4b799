"""Lightning indexer (CSA): score(t, s) = Σ_h w_h·ReLU(q_h·k_s) over the visible compressed rows, then top-k.

Row s is visible to a query at position p iff s < (p+1)//ratio; invisible rows score −inf and top-k picks that
land on them become −1. When a query sees ≤ k rows it selects all of them. Work is chunked over queries so the
score buffer stays bounded (≈ `budget_bytes`) even at 1M tokens.

Ties: where the k-th largest score is shared by rows in and out of the top-k, the lower rows win (the naive twin
sorts stably). torch.topk leaves that open, and the choice changes the attention when it happens (exact zeros tie
often in small random models: every head's ReLU at 0), so every path follows the one rule: the C loop
(kernels.cpu_indexer) by construction, the torch paths through `_ties_to_lower_rows`. The order of the picks within
a row stays unspecified.
"""

import torch
import triton
import triton.language as tl

from . import cpu_indexer
from .dispatch import use_triton
from .errors import ConfigError, check
from .layout import (
    check_pool,
    check_positions,
    gather_rows,
    queries_by_sequence,
    rows_per_block,
    sequence_rows,
    single_query_order,
)
from .sparse_attn import compute_dtype

##### Reference #####


def naive_indexer_scores(q, weights, seq_ids, positions, key_pool, key_table, ratio):
    """Scores `[T, N]` (N = most rows any query sees), −inf where invisible."""
    nvis = (positions.long() + 1) // ratio                                          # [T]
    n = int(nvis.max().item()) if nvis.numel() else 0
    idx = torch.arange(n, device=q.device).expand(q.shape[0], n)
    k = gather_rows(key_pool, key_table, seq_ids.long()[:, None], idx).float()      # [T, N, DI]
    s = torch.einsum("thd,tnd->thn", q.float(), k).relu()                           # [T, HI, N]
    s = (s * weights.float()[:, :, None]).sum(1)                                    # [T, N]
    return s.masked_fill(idx >= nvis[:, None], float("-inf"))


def naive_indexer_topk(q, weights, seq_ids, positions, key_pool, key_table, ratio, topk):
    """Readable twin of `indexer_topk`: a stable descending sort of each query's scores, the first k (so ties go to
    the lower rows), −1 for picks past the visible rows."""
    s = naive_indexer_scores(q, weights, seq_ids, positions, key_pool, key_table, ratio)
    out = torch.full((s.shape[0], topk), -1, dtype=torch.int32, device=s.device)
    kk = min(topk, s.shape[1])
    if kk:
        val, idx = s.sort(dim=-1, descending=True, stable=True)
        out[:, :kk] = torch.where(torch.isinf(val[:, :kk]), -1, idx[:, :kk]).to(torch.int32)
    return out


def _ties_to_lower_rows(s: torch.Tensor, picks: torch.Tensor) -> torch.Tensor:
    """picks [T, k]: a top-k of each row of s [T, N] in any tie order (torch.topk). Rows where the k-th largest score
    also lies outside the picks get the picks with score > it plus the lowest tied rows (the naive twin's rule). One
    comparison pass over s when nothing ties."""
    k = picks.shape[1]
    tau = s.gather(1, picks.long()).amin(1, keepdim=True)                          # each row's k-th largest
    tied = (s >= tau).sum(1) > k
    if not bool(tied.any()):
        return picks
    rows = tied.nonzero().squeeze(1)
    sr, tr = s[rows], tau[rows]
    gt, eq = sr > tr, sr == tr
    take = gt | (eq & (eq.cumsum(1) <= k - gt.sum(1, keepdim=True)))                # exactly k a row
    picks = picks.clone()
    picks[rows] = take.nonzero()[:, 1].view(-1, k).to(picks.dtype)
    return picks


def _topk_from_scores(s: torch.Tensor, topk: int) -> torch.Tensor:
    """int32 `[T, topk]` indices of the largest finite scores (ties to the lower rows), −1 past the visible rows."""
    t, n = s.shape
    out = torch.full((t, topk), -1, dtype=torch.int32, device=s.device)
    kk = min(topk, n)
    if kk:
        idx = _ties_to_lower_rows(s, s.topk(kk, dim=-1).indices)  # sorted: the −1s come last
        out[:, :kk] = torch.where(torch.isinf(s.gather(1, idx)), -1, idx).to(torch.int32)
    return out


##### CPU fast path #####


def _scores_into(out: torch.Tensor, q: torch.Tensor, w: torch.Tensor, keys: torch.Tensor, block: int) -> None:
    """out [Tq, N] = Σ_h w[:, h]·relu(q[:, h]·keys[n]) (q [Tq, HI, DI], keys [N, DI]), `block` keys at a time so the
    [Tq, HI, block] GEMM output stays in cache for the ReLU and the head-weighted sum."""
    tq, hi, di = q.shape
    qf, wf = q.reshape(tq * hi, di), w[:, None, :]
    for n0 in range(0, keys.shape[0], block):
        kb = keys[n0:n0 + block]
        sc = torch.mm(qf, kb.T).view(tq, hi, -1).float().relu_()                  # [Tq, HI, nb]
        out[:, n0:n0 + kb.shape[0]] = torch.bmm(wf, sc).squeeze(1)


def _topk_by_blocks(sc: torch.Tensor, k: int, block: int = 8) -> torch.Tensor:
    """Indices [T, k] of a top-k of each row of sc [T, N] (unordered; ties broken arbitrarily, as topk does), via the
    k blocks of `block` scores with the largest maxima: every score above the k-th largest block maximum τ lies in
    those blocks and they hold ≥ k scores ≥ τ, so the top-k of their k·block scores (plus the N % block tail) is a
    top-k of the row. One max pass and two small top-ks instead of a top-k over all N."""
    t, n = sc.shape
    nb = n // block
    if nb < k:
        return sc.topk(k, -1, sorted=False).indices
    top_blocks = sc[:, : nb * block].view(t, nb, block).amax(-1).topk(k, -1, sorted=False).indices
    cand = (top_blocks[..., None] * block + torch.arange(block, device=sc.device)).view(t, k * block)
    if n % block:
        cand = torch.cat([cand, torch.arange(nb * block, n, device=sc.device).expand(t, -1)], 1)
    return cand.gather(1, sc.gather(1, cand).topk(k, -1, sorted=False).indices)


def indexer_topk_torch(q, weights, seq_ids, positions, key_pool, key_table, ratio, topk, budget_bytes=32 << 20,
                       cache_bytes=1 << 20, max_chunk=128, blocked_topk_from=32, native=True):
    """Queries that see ≤ topk rows take them all (no scores). The others, per sequence: the fused C loop of
    kernels.cpu_indexer where it applies (fp32, AVX-512), else in chunks: blocked GEMM of
    the chunk against the keys it can see, ReLU, head-weighted sum, −inf past each query's visible rows, top-k;
    queries alone in their sequence (decode) all together, their keys gathered per query. Scores use ≈ budget_bytes
    per chunk; each GEMM block ≈ cache_bytes. Rows of ≥ blocked_topk_from·topk scores use _topk_by_blocks.
    native=False keeps the torch loops (tests compare the two)."""
    t, hi, _ = q.shape
    out, cdt = torch.full((t, topk), -1, dtype=torch.int32, device=q.device), compute_dtype(q)
    cols = torch.arange(topk, device=q.device, dtype=torch.int32)
    nvis_all = (positions.long() + 1) // ratio
    few = nvis_all <= topk
    if bool(few.any()):
        out[few] = torch.where(cols[None, :] < nvis_all[few, None], cols[None, :], -1)
    if bool(few.all()):
        return out
    rest = (~few).nonzero().squeeze(1)
    alone = single_query_order(seq_ids[rest])  # every query alone in its sequence (decode): all gathered together
    singles = [rest[alone]] if alone is not None else []
    for s, qi, pos in queries_by_sequence(seq_ids[rest], positions[rest]) if alone is None else ():
        qi = rest[qi]
        if qi.numel() == 1:
            singles.append(qi)
            continue
        nvis = (pos + 1) // ratio
        n = int(nvis[-1])
        keys = sequence_rows(key_pool, key_table[s], n).to(cdt)                     # [N, DI], once per sequence
        picks = cpu_indexer.topk(q[qi].to(cdt), weights[qi], keys, nvis, topk) if native else None  # C (fp32)
        if picks is not None:
            out[qi] = picks
            continue
        chunk = max(1, min(qi.numel(), max_chunk, budget_bytes // (n * 4)))
        for c0 in range(0, qi.numel(), chunk):
            ci, nv = qi[c0:c0 + chunk], nvis[c0:c0 + chunk]
            nc = int(nv[-1])                                                        # keys this chunk can see
            sc = torch.empty(ci.numel(), nc, device=q.device)
            _scores_into(sc, q[ci].to(cdt), weights[ci].float(), keys[:nc],
                         max(16, min(1 << 12, cache_bytes // (4 * hi * ci.numel()))))
            sc.masked_fill_(torch.arange(nc, device=q.device)[None, :] >= nv[:, None], float("-inf"))
            # every query here sees > topk rows; over long histories the blocked top-k reads far fewer scores twice
            picks = (_topk_by_blocks(sc, topk) if nc >= blocked_topk_from * topk else
                     sc.topk(topk, dim=-1, sorted=False).indices)
            out[ci] = _ties_to_lower_rows(sc, picks).to(torch.int32)
    if singles:
        qi = torch.cat(singles)
        nvis = nvis_all[qi]
        picks = cpu_indexer.topk_paged(q[qi].to(cdt), weights[qi], key_pool, key_table, seq_ids[qi], nvis,
                                       topk) if native else None                  # C, keys read in place
        if picks is not None:
            out[qi] = picks
            return out
        chunk = max(1, budget_bytes // (int(nvis.max()) * (hi + 1) * 4))
        for c0 in range(0, qi.numel(), chunk):
            ci, nv = qi[c0:c0 + chunk], nvis[c0:c0 + chunk]
            idx = torch.arange(int(nv.max()), device=q.device).expand(ci.numel(), -1)
            keys = gather_rows(key_pool, key_table, seq_ids[ci].long()[:, None], idx, False).to(cdt)  # [Tc, N, DI]
            sc = torch.bmm(q[ci].to(cdt), keys.transpose(1, 2)).float().relu_()    # [Tc, HI, N]
            sc = torch.bmm(weights[ci].float()[:, None, :], sc).squeeze(1)           # [Tc, N]
            sc.masked_fill_(idx >= nv[:, None], float("-inf"))
            out[ci] = _ties_to_lower_rows(sc, sc.topk(topk, dim=-1, sorted=False).indices).to(torch.int32)
    return out


##### Triton kernel: scores; top-k of each query chunk by torch.topk on the device #####


@triton.jit
def _indexer_scores_kernel(Q, W, KEYS, KBT, SEQ, POS, S,
                           stride_qt, stride_qh, stride_wt, stride_kbt, stride_st,
                           HI, DI, N, RATIO,
                           RPB: tl.constexpr, BLOCK_HI: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr):
    t = tl.program_id(0)
    offs_n = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_h = tl.arange(0, BLOCK_HI)
    offs_d = tl.arange(0, BLOCK_D)
    hmask, dmask = offs_h < HI, offs_d < DI
    seq = tl.load(SEQ + t).to(tl.int64)
    nvis = (tl.load(POS + t) + 1) // RATIO
    valid = offs_n < nvis
    q = tl.load(Q + t * stride_qt + offs_h[:, None] * stride_qh + offs_d[None, :],
                mask=hmask[:, None] & dmask[None, :], other=0.0)                # [BLOCK_HI, BLOCK_D]
    w = tl.load(W + t * stride_wt + offs_h, mask=hmask, other=0.0).to(tl.float32)
    blk = tl.load(KBT + seq * stride_kbt + offs_n // RPB, mask=valid, other=0).to(tl.int64)
    row = blk * RPB + offs_n % RPB
    k = tl.load(KEYS + row[:, None] * DI + offs_d[None, :], mask=valid[:, None] & dmask[None, :], other=0.0)
    s = tl.dot(q, tl.trans(k)).to(tl.float32)                                  # [BLOCK_HI, BLOCK_N]
    s = tl.sum(tl.maximum(s, 0.0) * w[:, None], 0)                             # [BLOCK_N]
    s = tl.where(valid, s, float("-inf"))
    tl.store(S + t * stride_st + offs_n, s, mask=offs_n < N)


def _check(q, weights, seq_ids, positions, key_pool, key_table, ratio, topk):
    check(q.dim() == 3 and q.stride(-1) == 1, f"q must be [T, HI, DI] (last dim contiguous), got {tuple(q.shape)}")
    t, hi, di = q.shape
    check(weights.shape == (t, hi), f"weights must be [{t}, {hi}], got {tuple(weights.shape)}")
    check_positions(seq_ids, positions, t, q.device)
    check_pool(key_pool, key_table, rows_per_block(ratio), "indexer key")
    check(key_pool.shape[2] == di and key_pool.dtype == q.dtype, "indexer key pool must match q's DI and dtype")
    check(topk >= 1, f"topk must be >= 1, got {topk}", ConfigError)


def indexer_scores_triton(q, weights, seq_ids, positions, key_pool, key_table, ratio):
    """Scores `[T, N]` (−inf where invisible) from the Triton kernel; N = most rows any query sees."""
    t, hi, di = q.shape
    n = int(((positions.max().long() + 1) // ratio).item()) if t else 0
    s = torch.empty(t, n, dtype=torch.float32, device=q.device)
    if t == 0 or n == 0:
        return s
    block_n = 64
    w = weights.float().contiguous()
    _indexer_scores_kernel[(t, triton.cdiv(n, block_n))](
        q, w, key_pool, key_table, seq_ids, positions, s,
        q.stride(0), q.stride(1), w.stride(0), key_table.stride(0), s.stride(0), hi, di, n, ratio,
        RPB=rows_per_block(ratio), BLOCK_HI=max(16, triton.next_power_of_2(hi)), BLOCK_N=block_n,
        BLOCK_D=max(16, triton.next_power_of_2(di)))
    return s


def indexer_topk_triton(q, weights, seq_ids, positions, key_pool, key_table, ratio, topk, chunk=512):
    """Triton scores + torch.topk, `chunk` queries at a time (bounded buffer). Shapes as in `indexer_topk`."""
    _check(q, weights, seq_ids, positions, key_pool, key_table, ratio, topk)
    out = torch.full((q.shape[0], topk), -1, dtype=torch.int32, device=q.device)
    for c0 in range(0, q.shape[0], chunk):
        sl = slice(c0, c0 + chunk)
        s = indexer_scores_triton(q[sl], weights[sl], seq_ids[sl], positions[sl], key_pool, key_table, ratio)
        out[sl] = _topk_from_scores(s, topk)
    return out


def indexer_topk(q, weights, seq_ids, positions, key_pool, key_table, ratio, topk):
    """Top-k compressed rows per query; CUDA → Triton scores, CPU → `indexer_topk_torch`.

    q `[T, HI, DI]` (rotated, Hadamard/quant applied by the caller), weights fp32 `[T, HI]` (weights_proj·x with
    the 1/sqrt(DI·HI) scale folded in), seq_ids/positions int32 `[T]`, key_pool `[nb, BLOCK_TOKENS//ratio, DI]` +
    key_table int32 `[B, nblk]`. Returns int32 `[T, topk]` row indices, −1 for no pick.
    """
    if use_triton(q):
        return indexer_topk_triton(q, weights, seq_ids, positions, key_pool, key_table, ratio, topk)
    _check(q, weights, seq_ids, positions, key_pool, key_table, ratio, topk)
    return indexer_topk_torch(q, weights, seq_ids, positions, key_pool, key_table, ratio, topk)

