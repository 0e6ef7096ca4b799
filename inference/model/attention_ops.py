"""Dispatch point of the model's hot attention pieces onto kernels/: CUDA tensors run the Triton kernels, CPU tensors
the kernels' vectorized torch paths (chunked over queries, never [T, T]). `naive_*` in kernels/ are the references.
Attention, indexer and compressor call the kernels' dispatchers; RMSNorm+RoPE and inverse RoPE keep the model's own
torch path and ask the same switch, `kernels.dispatch.use_triton` (tests force Triton with `force_triton()`).

`kv_pools` turns the rows of a call's sequences (contiguous rows of a batched state, or the engine's paged pools as
they are) into the block-table pools the kernels read."""

from dataclasses import dataclass

import torch

from inference.model.rope import apply_rotary_emb
from kernels.compressor import compressor as kernel_compressor
from kernels.dispatch import use_triton
from kernels.indexer import indexer_topk as kernel_indexer_topk
from kernels.layout import BLOCK_TOKENS
from kernels.rope_norm import inverse_rope_triton, rmsnorm_rope_triton
from kernels.sparse_attn import sparse_attn as kernel_sparse_attn


def _flat_rows(x: torch.Tensor, cos: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """x [b,s,(h,)d] -> (x [b*s,(h,)d] contiguous, int32 row of cos/sin [b*s]) for the rope kernels."""
    b, s = x.shape[:2]
    pos = torch.arange(s, dtype=torch.int32, device=x.device).repeat(b)
    return x.reshape(b * s, *x.shape[2:]).contiguous(), pos


def rmsnorm_rope(x: torch.Tensor, weight: torch.Tensor | None, cos: torch.Tensor, sin: torch.Tensor,
                 eps: float) -> torch.Tensor:
    """RMSNorm in fp32 (weighted unless weight is None) then RoPE: x [b,s,(h,)d], cos/sin [s, rope/2] (the rows'
    angles) -> x's shape and dtype. Triton: one fused kernel; torch: the model's two steps."""
    if use_triton(x):
        flat, pos = _flat_rows(x, cos)
        return rmsnorm_rope_triton(flat, weight, cos, sin, pos, 2 * cos.shape[-1], eps).view(x.shape)
    xf = x.float()
    y = xf * torch.rsqrt(xf.square().mean(-1, keepdim=True) + eps)
    return apply_rotary_emb((y * weight if weight is not None else y).to(x.dtype), cos, sin)


def inverse_rope(o: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Attention outputs o [b,s,h,d] with the rope part rotated back by each query's angle (cos/sin [s, rope/2])."""
    if use_triton(o):
        flat, pos = _flat_rows(o, cos)
        return inverse_rope_triton(flat, cos, sin, pos, 2 * cos.shape[-1]).view(o.shape)
    return apply_rotary_emb(o, cos, sin, inverse=True)


def compress_rows(kv: torch.Tensor, score: torch.Tensor, ape: torch.Tensor, norm_weight: torch.Tensor,
                  cos: torch.Tensor, sin: torch.Tensor, start: int, first_window: int, *, ratio: int, overlap: bool,
                  rope_dim: int, eps: float, rope_offset: int) -> torch.Tensor:
    """Fused pooling + RMSNorm + RoPE (kernels.compressor) of every window closed in buffers kv, score [b, T, coff*d]
    at positions start… (start = (first_window − overlap)·ratio when the carry window leads) -> rows [b, n, d] fp32.

    cos/sin [P, rope/2]: table row i is position rope_offset + i (only the emitted rows' positions are needed)."""
    b, t, c = kv.shape
    cu = torch.arange(b + 1, dtype=torch.int64) * t
    rows, _, _ = kernel_compressor(kv.reshape(b * t, c).contiguous(), score.reshape(b * t, c).contiguous(), ape,
                                   norm_weight, cos, sin, cu, torch.full((b,), start, dtype=torch.int64),
                                   torch.full((b,), first_window, dtype=torch.int64),
                                   ratio=ratio, overlap=overlap, rope_dim=rope_dim, eps=eps, rope_offset=rope_offset)
    return rows.view(b, -1, rows.shape[-1])


def compress_rows_packed(kv: list[torch.Tensor], score: list[torch.Tensor], ape: torch.Tensor,
                         norm_weight: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, start: list[int],
                         first_window: list[int], *, ratio: int, overlap: bool, rope_dim: int,
                         eps: float) -> torch.Tensor:
    """Buffers kv, score [L_i, coff*d] of several sequences, each closing exactly one window (first_window[i], its
    buffer at position start[i]) -> their rows [n, d] fp32 in buffer order, through one kernel call. RoPE is applied
    after the kernel's pooling and norm with cos/sin [n, rope/2] of each row's own position, the same arithmetic as
    the kernel's (kernels.compressor._norm_rope), so each row equals compress_rows' for its buffer alone."""
    cu = torch.tensor([0] + [k.shape[0] for k in kv], dtype=torch.int64).cumsum(0)
    rows, _, _ = kernel_compressor(torch.cat(kv).contiguous(), torch.cat(score).contiguous(), ape, norm_weight,
                                   cos[:, :0], sin[:, :0], cu, torch.tensor(start, dtype=torch.int64),
                                   torch.tensor(first_window, dtype=torch.int64), ratio=ratio, overlap=overlap,
                                   rope_dim=0, eps=eps)
    if not rope_dim:
        return rows
    return apply_rotary_emb(rows, cos, sin)


def row_pool(rows: torch.Tensor, rpb: int, start: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """rows [b, n, d] = logical rows start… of each sequence -> (pool [nb, rpb, d] contiguous, int32 table [b, nblk]).

    Blocks are aligned to rpb; table entries before start's block point at pool block 0 and are never read."""
    b, n, d = rows.shape
    b0, pad = divmod(start, rpb)
    nb = max(1, -(-(pad + n) // rpb))
    padded = rows.new_zeros(b, nb * rpb, d)
    padded[:, pad : pad + n] = rows
    table = torch.zeros(b, b0 + nb, dtype=torch.int32, device=rows.device)
    table[:, b0:] = torch.arange(b * nb, dtype=torch.int32, device=rows.device).view(b, nb)
    return padded.view(b * nb, rpb, d), table


def merge_pools(parts: list[tuple[torch.Tensor, torch.Tensor]], dtype: torch.dtype
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-span (pool [nb, rpb, d], int32 table [b, nblk]) -> one pool and one table, span-major rows.

    Spans on one shared pool (the engine's paged cache) keep it as it is: only their tables are stacked. Otherwise
    the pools are concatenated and each table shifted by the blocks before it. Short tables are padded with block 0,
    which the kernels never read (a row is read only if a query's position makes it visible)."""
    if len(parts) == 1 and parts[0][0].dtype == dtype:
        return parts[0]
    width = max(t.shape[1] for _, t in parts)
    first = parts[0][0]
    if all(p is first for p, _ in parts):
        pool, shifts = first, [0] * len(parts)
    else:
        sizes = [p.shape[0] for p, _ in parts]
        pool, shifts = torch.cat([p for p, _ in parts]), [sum(sizes[:i]) for i in range(len(parts))]
    table = torch.zeros(sum(t.shape[0] for _, t in parts), width, dtype=torch.int32, device=pool.device)
    r = 0
    for (_, t), k in zip(parts, shifts):
        table[r : r + t.shape[0], : t.shape[1]] = t + k if k else t
        r += t.shape[0]
    return pool.to(dtype), table


@dataclass(frozen=True)
class KVPools:
    """One layer's attended rows as kernel pools: raw window rows (128 per block) and compressed rows."""

    win_pool: torch.Tensor  # [nb, 128, d]
    win_table: torch.Tensor  # int32 [seqs, nblk], indexed by position // 128
    cmp_pool: torch.Tensor | None  # [nb, 128 // ratio, d]
    cmp_table: torch.Tensor | None  # int32 [seqs, nblk]
    ratio: int  # 0 = sliding window only


def kv_pools(windows: list[tuple[torch.Tensor, int | torch.Tensor]],
             comps: list[tuple[torch.Tensor, torch.Tensor]] | None, ratio: int) -> KVPools:
    """Per span: window rows [b, P, d] at positions start… (covering its queries' windows), or a window pool already
    readable in place as (pool [nb, 128, d], int32 table [b, nblk]) (a paged decode token: the ring itself), and
    compressed rows as (pool, table) (see GrowingRows.blocks / PagedRows.blocks) -> one KVPools for all of the call's
    sequences."""
    dtype = windows[0][0].dtype
    win_pool, win_table = merge_pools([row_pool(rows, BLOCK_TOKENS, start) if isinstance(start, int) else (rows, start)
                                       for rows, start in windows], dtype)
    if not ratio:
        return KVPools(win_pool, win_table, None, None, 0)
    cmp_pool, cmp_table = merge_pools(comps, dtype)
    return KVPools(win_pool, win_table, cmp_pool, cmp_table, ratio)


def attend(q: torch.Tensor, seq_ids: torch.Tensor, positions: torch.Tensor, pools: KVPools, attn_sink: torch.Tensor,
           softmax_scale: float, window: int, topk_idxs: torch.Tensor | None = None) -> torch.Tensor:
    """V4 sparse attention: q [b,s,h,d] (sequence seq_ids, position positions: both [b,s]) over the window plus
    compressed rows -> o [b,s,h,d].

    Compressed rows: topk_idxs int32 [b,s,k] (CSA, rows of cmp, -1 = none) or, when None, every visible row (HCA)."""
    b, s, h, d = q.shape
    qf = q.reshape(b * s, h, d).contiguous()
    tk = topk_idxs.reshape(b * s, -1).to(torch.int32).contiguous() if topk_idxs is not None else None
    o = kernel_sparse_attn(qf, seq_ids.reshape(-1).to(torch.int32), positions.reshape(-1).to(torch.int32),
                           pools.win_pool, pools.win_table, attn_sink, softmax_scale, window, pools.cmp_pool,
                           pools.cmp_table, pools.ratio, tk)
    return o.view(b, s, h, d)


def indexer_topk(q: torch.Tensor, keys: tuple[torch.Tensor, torch.Tensor], weights: torch.Tensor,
                 softmax_scale: float, seq_ids: torch.Tensor, positions: torch.Tensor, ratio: int,
                 topk: int) -> torch.Tensor:
    """Lightning-indexer top-k: q [b,s,h,d], keys (pool, int32 table) as kv_pools merges them, weights [b,s,h],
    seq_ids/positions [b,s] -> int32 [b,s,topk] rows of the query's own sequence, -1 = none.

    score(t, w) = Σ_h weights[t,h]·softmax_scale · relu(q[t,h]·k[w]); row w is visible iff w < (t+1)//ratio."""
    b, s, hi, di = q.shape
    pool, table = keys
    w = (weights.float() * softmax_scale).reshape(b * s, hi)
    return kernel_indexer_topk(q.reshape(b * s, hi, di).contiguous(), w, seq_ids.reshape(-1).to(torch.int32),
                               positions.reshape(-1).to(torch.int32), pool.to(q.dtype), table, ratio,
                               topk).view(b, s, topk)
