"""Test helpers for layouts the kernels do not serve: DeepSeek REF's `sparse_attn` contract (q [b,s,h,d], kv [b,n,d],
topk_idxs [b,s,k], −1 = none), the indexer over contiguous keys, and one sequence's rows packed at a start position.

A plain module (not a conftest). The REF-layout Triton path launches kernels.sparse_attn's kernel directly with no
window part, so the tests still cover that kernel against an independent formulation."""

import torch
import triton

from kernels.errors import check
from kernels.indexer import indexer_topk
from kernels.layout import BLOCK_TOKENS, pool_from_rows, rows_per_block
from kernels.sparse_attn import _sparse_attn_kernel

##### REF layout: q [b,s,h,d], kv [b,n,d], topk_idxs [b,s,k] (−1 = none) — DeepSeek's `sparse_attn` contract #####


def naive_sparse_attn_gather(q, kv, attn_sink, topk_idxs, softmax_scale):
    """DeepSeek REF `sparse_attn(q, kv, attn_sink, topk_idxs, softmax_scale)`, readable: gather the listed rows of
    kv (window rows and compressed rows concatenated), one softmax with the sink → o `[b,s,h,d]`."""
    b, s, h, d = q.shape
    valid = topk_idxs >= 0
    rows = torch.gather(kv.float(), 1, topk_idxs.clamp_min(0).long().reshape(b, -1, 1).expand(-1, -1, d))
    rows = rows.view(b, s, -1, d)                                                  # [b, s, k, d]
    sc = torch.einsum("bshd,bskd->bshk", q.float(), rows) * softmax_scale
    sc = sc.masked_fill(~valid[:, :, None, :], float("-inf"))
    sink = attn_sink.float().view(1, 1, h)
    m = torch.maximum(sc.amax(-1), sink)
    e = torch.exp(sc - m[..., None])
    p = e / (e.sum(-1) + torch.exp(sink - m))[..., None]
    return torch.einsum("bshk,bskd->bshd", p, rows).to(q.dtype)


def sparse_attn_gather_torch(q, kv, attn_sink, topk_idxs, softmax_scale, budget_bytes=64 << 20):
    """The twin, chunked over queries so the gathered rows stay bounded."""
    b, s, h, d = q.shape
    per_query = topk_idxs.shape[-1] * (d + 2 * h) * 4
    chunk = max(1, budget_bytes // max(per_query, 1))
    out = torch.empty_like(q)
    for c0 in range(0, s, chunk):
        sl = slice(c0, c0 + chunk)
        out[:, sl] = naive_sparse_attn_gather(q[:, sl], kv, attn_sink, topk_idxs[:, sl], softmax_scale)
    return out


def _gather_as_pool(q, kv, topk_idxs):
    """View the REF layout as the block-table one: kv rows as a pool of 1-row blocks, one table row per batch."""
    b, s, h, d = q.shape
    n = kv.shape[1]
    pool = kv.reshape(b * n, 1, d)
    table = torch.arange(b * n, dtype=torch.int32, device=q.device).view(b, n)
    seq = torch.arange(b, dtype=torch.int32, device=q.device).repeat_interleave(s)
    pos = torch.full((b * s,), max(n - 1, 0), dtype=torch.int32, device=q.device)   # every listed row visible
    return pool, table, seq, pos, topk_idxs.reshape(b * s, -1).to(torch.int32).contiguous()


def sparse_attn_gather_triton(q, kv, attn_sink, topk_idxs, softmax_scale):
    """REF-layout sparse attention through kernels.sparse_attn's Triton kernel (no window part, ratio 1, listed
    rows): CUDA, or CPU under TRITON_INTERPRET=1."""
    check(q.dim() == 4 and kv.dim() == 3 and topk_idxs.dim() == 3, "q [b,s,h,d], kv [b,n,d], topk_idxs [b,s,k]")
    b, s, h, d = q.shape
    check(kv.shape[0] == b and kv.shape[2] == d and topk_idxs.shape[:2] == (b, s), "batch / head_dim mismatch")
    check(kv.dtype == q.dtype and attn_sink.shape == (h,), "kv must match q's dtype; attn_sink must be [h]")
    o = torch.empty_like(q)
    if b * s == 0 or kv.shape[1] == 0:
        return o.zero_()
    pool, table, seq, pos, tk = _gather_as_pool(q, kv.contiguous(), topk_idxs)
    qf = q.reshape(b * s, h, d).contiguous()
    of = o.view(b * s, h, d)
    block_d = max(16, triton.next_power_of_2(d))
    block_h = 16 if block_d > 256 else max(16, min(64, triton.next_power_of_2(h)))
    _sparse_attn_kernel[(b * s, triton.cdiv(h, block_h), 1)](
        qf, of, pool, table, pool, table, tk, seq, pos, attn_sink.float().contiguous(), of, of,
        qf.stride(0), qf.stride(1), of.stride(0), of.stride(1), table.stride(0), table.stride(0), tk.stride(0),
        h, d, tk.shape[1], 0, 1, 1, float(softmax_scale),
        WIN_RPB=1, CMP_RPB=1, HAS_CMP=True, HAS_TOPK=True, SPLIT=False, BLOCK_H=block_h, BLOCK_N=32,
        BLOCK_D=block_d, num_warps=4 if block_d <= 256 else 8)
    return o


##### Indexer over contiguous keys #####


def indexer_topk_gather(q, k, weights, positions, ratio, topk):
    """Model layout: q `[b,s,HI,DI]`, k `[b,n,DI]` (contiguous compressed keys), weights `[b,s,HI]` (scale folded
    in), positions int `[s]` (absolute, shared by the batch) → int32 `[b,s,topk]`, −1 = none."""
    check(q.dim() == 4 and k.dim() == 3 and weights.shape == q.shape[:3], "q [b,s,HI,DI], k [b,n,DI], w [b,s,HI]")
    b, s, hi, di = q.shape
    rpb = rows_per_block(ratio)
    n = k.shape[1]
    nb = max(1, -(-n // rpb))
    pool = k.new_zeros(b, nb * rpb, di)
    pool[:, :n] = k
    pool = pool.view(b * nb, rpb, di)
    table = torch.arange(b * nb, dtype=torch.int32, device=q.device).view(b, nb)
    seq = torch.arange(b, dtype=torch.int32, device=q.device).repeat_interleave(s)
    pos = positions.to(device=q.device, dtype=torch.int32).repeat(b)
    check(int(((pos.max() + 1) // ratio).item()) <= n if pos.numel() else True, "k has fewer rows than visible")
    out = indexer_topk(q.reshape(b * s, hi, di).contiguous(), weights.reshape(b * s, hi), seq, pos, pool, table,
                       ratio, topk)
    return out.view(b, s, topk)


##### One sequence's rows at a start position #####


def pool_at(rows: torch.Tensor, start_pos: int, rpb: int = BLOCK_TOKENS):
    """One sequence's rows `[n, D]` for logical rows start_pos… → (pool `[nb, rpb, D]`, int32 table `[1, nblk]`).

    Blocks are aligned to rpb (the first one left-padded); table entries for blocks before start_pos point at
    pool block 0 and must not be read. Use: a prefill chunk's window = the ≤ 127 earlier raw rows + its fresh rows.
    """
    check(rows.dim() == 2 and start_pos >= 0, "rows must be [n, D] and start_pos >= 0")
    b0 = start_pos // rpb
    pad = start_pos - b0 * rpb
    padded = torch.cat([rows.new_zeros(pad, rows.shape[1]), rows])
    pool, table = pool_from_rows(padded[None], rpb)
    full = torch.zeros(1, b0 + table.shape[1], dtype=torch.int32, device=rows.device)
    full[:, b0:] = table
    return pool, full
