"""The three hot attention pieces as plain torch functions (kernels/ provides drop-in fast versions later)."""

import torch
import torch.nn.functional as F


def compressor_pool(kv: torch.Tensor, score: torch.Tensor, ratio: int, carry_kv: torch.Tensor | None = None,
                    carry_score: torch.Tensor | None = None) -> torch.Tensor:
    """Gated pooling of closed windows: kv, score [b, n*m, coff*d] (score incl. ape) -> rows [b, n, d] fp32.

    coff=1 (HCA): softmax per channel over the m tokens of a window. coff=2 (CSA, overlap): row w pools the
    A-half ([:d]) of window w-1 (carry_* [b, m, d] for w=0, -inf score = none) and the B-half of window w."""
    b, t, c = kv.shape
    n = t // ratio
    kv = kv.float().view(b, n, ratio, c)
    score = score.float().view(b, n, ratio, c)
    if carry_kv is not None:  # overlap: slots [A-half of prev window | B-half of this window]
        d = c // 2
        prev_kv = torch.cat([carry_kv[:, None].float(), kv[:, :-1, :, :d]], dim=1)
        prev_score = torch.cat([carry_score[:, None].float(), score[:, :-1, :, :d]], dim=1)
        kv = torch.cat([prev_kv, kv[..., d:]], dim=2)  # [b, n, 2m, d]
        score = torch.cat([prev_score, score[..., d:]], dim=2)
    return (kv * score.softmax(dim=2)).sum(dim=2)


def indexer_topk(q: torch.Tensor, k: torch.Tensor, weights: torch.Tensor, softmax_scale: float,
                 positions: torch.Tensor, ratio: int, topk: int) -> torch.Tensor:
    """Lightning-indexer top-k: q [b,s,h,d], k [b,n,d], weights [b,s,h] -> int64 [b,s,min(topk,n)], -1 = none.

    score(t, w) = Σ_h weights[t,h] · relu(q[t,h]·k[w]) · softmax_scale; row w is visible iff w < (t+1)//ratio."""
    b, s = q.shape[:2]
    n = k.shape[1]
    kk = min(topk, n)
    if kk == 0:
        return torch.empty(b, s, 0, dtype=torch.long, device=q.device)
    scores = F.relu(torch.einsum("bshd,bnd->bshn", q.float(), k.float())) * softmax_scale
    scores = (scores * weights.float()[..., None]).sum(dim=2)  # [b, s, n]
    limit = ((positions + 1) // ratio)[None, :, None]  # [1, s, 1]
    rows = torch.arange(n, device=q.device)[None, None, :]
    scores = scores.masked_fill(rows >= limit, float("-inf"))
    idx = scores.topk(kk, dim=-1).indices
    return torch.where(idx >= limit, torch.full_like(idx, -1), idx)


def sparse_attn(q: torch.Tensor, kv: torch.Tensor, attn_sink: torch.Tensor, topk_idxs: torch.Tensor,
                softmax_scale: float) -> torch.Tensor:
    """One softmax over listed K=V rows plus a per-head sink: q [b,s,h,d], kv [b,n,d], idxs [b,s,k] (-1 = no key).

    p_j = exp(s_j) / (Σ exp(s_k) + exp(sink_h)); returns o [b,s,h,d] in q's dtype."""
    b, s, h, d = q.shape
    valid = topk_idxs >= 0
    safe = topk_idxs.clamp(min=0)
    flat = (safe + torch.arange(b, device=kv.device).view(b, 1, 1) * kv.shape[1]).flatten()
    rows = kv.reshape(-1, d).index_select(0, flat).view(b, s, -1, d).float()  # [b,s,k,d]
    scores = torch.einsum("bshd,bskd->bshk", q.float(), rows) * softmax_scale
    scores = scores.masked_fill(~valid[:, :, None, :], float("-inf"))
    sink = attn_sink.float().view(1, 1, h, 1).expand(b, s, h, 1)
    logits = torch.cat([scores, sink], dim=-1)
    probs = (logits - logits.amax(dim=-1, keepdim=True)).softmax(dim=-1)[..., :-1]
    return torch.einsum("bshk,bskd->bshd", probs, rows).to(q.dtype)
