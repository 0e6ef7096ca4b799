"""DeepSeek-V4 in plain PyTorch, class by class after DeepSeek's reference inference/model.py (same parameter names,
so official checkpoints load by a lookup table).

Only the math lives here. The layers read the call's flat inputs from a `Packing` (inference.model.runner), which the
model runner builds and which keeps the cache bookkeeping; attention reads window rows, compressed rows and indexer
keys through it and runs in query chunks, so no [T, T] tensor is ever built."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from inference.model import numerics
from inference.model.attention_ops import (
    attend,
    compress_rows,
    compress_rows_packed,
    indexer_topk,
    inverse_rope,
    rmsnorm_rope,
)
from inference.model.config import CSA, SLIDING, ModelArgs
from inference.model.rope import Rotary, apply_rotary_emb
from inference.model.state import CompressorState
from kernels import cpu_native
from kernels.mhc import hc_post, hc_pre

if TYPE_CHECKING:
    from inference.model.runner import Packing


class RMSNorm(nn.Module):
    """Weighted RMSNorm computed in fp32 (weight kept in fp32)."""

    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim, dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xf = x.float()
        return (xf * torch.rsqrt(xf.square().mean(-1, keepdim=True) + self.eps) * self.weight).to(x.dtype)


def linear(in_features: int, out_features: int, dtype: torch.dtype) -> nn.Linear:
    return nn.Linear(in_features, out_features, bias=False, dtype=dtype)


class Head(nn.Linear):
    """The output head: an nn.Linear (same parameter, same checkpoint name) whose forward, on CPU with an fp32 weight
    kept column-major (inference.checkpoint.loader.head_layout_) and the few rows of a decode step, runs the C GEMM
    of kernels.cpu_native instead of MKL's (docs/cpu-profile.md, "output head")."""

    def __init__(self, in_features: int, out_features: int, dtype: torch.dtype):
        super().__init__(in_features, out_features, bias=False, dtype=dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = cpu_native.linear_colmajor(x, self.weight)
        return F.linear(x, self.weight) if y is None else y


class Compressor(nn.Module):
    """Compresses KV via learned gated pooling over `compress_ratio` consecutive tokens (overlapping for CSA)."""

    def __init__(self, args: ModelArgs, compress_ratio: int, head_dim: int, rotary: Rotary, overlap: bool,
                 dtype: torch.dtype, rotate: bool = False):
        super().__init__()
        self.ratio, self.head_dim, self.rotary, self.rotate = compress_ratio, head_dim, rotary, rotate
        self.overlap = overlap  # CSA windows overlap (coff = 2); HCA windows do not
        self.rope_dim = args.qk_rope_head_dim
        self.reference_numerics = args.reference_numerics
        coff = 2 if self.overlap else 1
        self.wkv = linear(args.hidden_size, coff * head_dim, dtype)
        self.wgate = linear(args.hidden_size, coff * head_dim, dtype)
        self.ape = nn.Parameter(torch.zeros(compress_ratio, coff * head_dim, dtype=torch.float32))
        self.norm = RMSNorm(head_dim, args.rms_norm_eps)

    def project(self, x: torch.Tensor, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x [b,s,dim] at positions [s] -> (kv, gate score + ape) [b,s,coff*d] fp32, as in the reference."""
        kv = F.linear(x.float(), self.wkv.weight.float())
        score = F.linear(x.float(), self.wgate.weight.float()) + self.ape[positions % self.ratio]
        return kv, score

    def forward(self, x: torch.Tensor, start_pos: int, st: CompressorState) -> torch.Tensor:
        """x [b,s,dim] -> rows closed by these tokens [b, n_new, head_dim] (normed, RoPE at w*m)."""
        positions = torch.arange(start_pos, start_pos + x.shape[1], device=x.device)
        return self.close(*self.project(x, positions), start_pos, st, x.dtype)

    def close(self, kv: torch.Tensor, score: torch.Tensor, start_pos: int, st: CompressorState,
              dtype: torch.dtype) -> torch.Tensor:
        """Projections of tokens start_pos… (project) -> the rows they close [b, n_new, head_dim]; keeps the open
        window and the CSA carry in st."""
        b, s = kv.shape[:2]
        m, d = self.ratio, self.head_dim
        n_open = start_pos % m
        if n_open + s < m:  # nothing closes (most decode steps): the tokens join the open window
            st.open_kv[:, n_open : n_open + s] = kv
            st.open_score[:, n_open : n_open + s] = score
            return kv.new_zeros(b, 0, d, dtype=dtype)
        kv = torch.cat([st.open_kv[:, :n_open], kv], dim=1)
        score = torch.cat([st.open_score[:, :n_open], score], dim=1)
        first_window = (start_pos - n_open) // m
        n_close = kv.shape[1] // m
        used = n_close * m
        rows = kv.new_zeros(b, 0, d, dtype=dtype)
        if n_close:
            buf_kv, buf_score, start = self._buffer(kv, score, first_window, used, st)
            offset = first_window * m  # RoPE slice: only the emitted rows' positions w·m
            cos, sin = self.rotary.cos_sin(torch.arange(offset, offset + (n_close - 1) * m + 1, device=kv.device))
            rows = compress_rows(buf_kv, buf_score, torch.zeros_like(self.ape), self.norm.weight, cos, sin, start,
                                 first_window, ratio=m, overlap=self.overlap, rope_dim=self.rope_dim,
                                 eps=self.norm.eps, rope_offset=offset)  # score already holds ape[pos % m]
            if self.reference_numerics:
                if self.rotate:
                    rows = numerics.fp4_act_quant(numerics.rotate_activation(rows))
                else:
                    rows = numerics.act_quant_kv(rows, self.rope_dim)
            rows = rows.to(dtype)
        rem = kv.shape[1] - used
        st.open_kv[:, :rem] = kv[:, used:]
        st.open_score[:, :rem] = score[:, used:]
        return rows

    def _buffer(self, kv: torch.Tensor, score: torch.Tensor, first_window: int, used: int, st: CompressorState
                ) -> tuple[torch.Tensor, torch.Tensor, int]:
        """The compressor's input for the windows first_window… that kv[:, :used] closes (kv, score already led by
        the open window): (buffer kv, buffer score, the buffer's first position). With overlap the carry window
        leads the buffer (its A-half only is read), and st's carry becomes the last window closed here."""
        m, d = self.ratio, self.head_dim
        buf_kv, buf_score, start = kv[:, :used], score[:, :used], first_window * m
        if self.overlap and first_window > 0:
            lead = kv.new_zeros(kv.shape[0], m, 2 * d)
            lead_score = torch.zeros_like(lead)
            lead[..., :d], lead_score[..., :d] = st.carry_kv, st.carry_score
            buf_kv, buf_score = torch.cat([lead, buf_kv], 1), torch.cat([lead_score, buf_score], 1)
            start -= m
        if self.overlap:
            st.carry_kv = kv[:, used - m : used, :d].clone()
            st.carry_score = score[:, used - m : used, :d].clone()
        return buf_kv, buf_score, start

    def close_decode(self, items: list[tuple[torch.Tensor, torch.Tensor, int, CompressorState]],
                     dtype: torch.dtype) -> list[torch.Tensor]:
        """close() for one decode token of each of many sequences of batch 1 (kv, score [1,1,coff*d], start_pos,
        state): the same state updates and rows, but the windows that close are pooled in one compressor call
        (RoPE then applied per row, as the kernel would) instead of one call per sequence. CPU, no reference
        numerics (the caller checks)."""
        m = self.ratio
        out: list[torch.Tensor | None] = [None] * len(items)
        bufs = []  # (item, buffer kv [L, c], buffer score, start, first window)
        for i, (kv, score, start_pos, st) in enumerate(items):
            n_open = start_pos % m
            if n_open + 1 < m:
                out[i] = self.close(kv, score, start_pos, st, dtype)
                continue
            kv = torch.cat([st.open_kv[:, :n_open], kv], dim=1)  # [1, m, c]: exactly one window closes
            score = torch.cat([st.open_score[:, :n_open], score], dim=1)
            first_window = (start_pos - n_open) // m
            buf_kv, buf_score, start = self._buffer(kv, score, first_window, m, st)
            bufs.append((i, buf_kv[0], buf_score[0], start, first_window))
        if bufs:
            wins = torch.tensor([b[4] for b in bufs], device=bufs[0][1].device)
            cos, sin = self.rotary.cos_sin(wins * m)  # each row's position w·m
            rows = compress_rows_packed([b[1] for b in bufs], [b[2] for b in bufs], torch.zeros_like(self.ape),
                                        self.norm.weight, cos, sin, [b[3] for b in bufs], [b[4] for b in bufs],
                                        ratio=m, overlap=self.overlap, rope_dim=self.rope_dim, eps=self.norm.eps)
            for r, b in enumerate(bufs):
                out[b[0]] = rows[r : r + 1, None].to(dtype)
        return out

    def close_decode_rows(self, kv: torch.Tensor, score: torch.Tensor, starts: list[int],
                          states: list[CompressorState], dtype: torch.dtype) -> tuple[list[int], torch.Tensor | None]:
        """close_decode() without a per-sequence op: the projections kv, score [n, coff*d] of one decode token of each
        of n sequences of batch 1 (token i at position starts[i], open state states[i]) -> (the indices i whose
        window closes, their rows [k, head_dim]). The other tokens join their open windows in one copy; the closing
        windows are built as one batch, their rows come from one compressor call (as close_decode's) and the CSA
        carries are updated in place in one copy. CPU, no reference numerics (the caller checks)."""
        m, d = self.ratio, self.head_dim
        closing = [i for i, p in enumerate(starts) if p % m == m - 1]
        if len(closing) < len(starts):
            kv_rows, score_rows = kv.unbind(0), score.unbind(0)
            dst, src = [], []
            for i, (p, st) in enumerate(zip(starts, states)):
                if p % m != m - 1:
                    open_kv, open_score = st.open_rows()
                    dst += (open_kv[p % m], open_score[p % m])
                    src += (kv_rows[i], score_rows[i])
            torch._foreach_copy_(dst, src)
        if not closing:
            return closing, None
        sts = [states[i] for i in closing]
        if len(closing) < len(starts):
            sel = torch.tensor(closing, device=kv.device)
            kv, score = kv[sel], score[sel]
        # each closing window [k, m, c]: the m − 1 open rows, then the new token
        win_kv, win_score = torch.cat([st.open_kv for st in sts]), torch.cat([st.open_score for st in sts])
        win_kv[:, m - 1], win_score[:, m - 1] = kv, score
        wins = [starts[i] // m for i in closing]
        if self.overlap:  # the carry window leads (A-half only; B-half zero) where there is one, as in _buffer
            lead_kv, lead_score = win_kv.new_zeros(win_kv.shape), win_score.new_zeros(win_score.shape)
            lead_kv[..., :d] = torch.cat([st.carry_kv for st in sts])
            lead_score[..., :d] = torch.cat([st.carry_score for st in sts])
            buf_kv = torch.cat([lead_kv, win_kv], 1).unbind(0)
            buf_score = torch.cat([lead_score, win_score], 1).unbind(0)
            if min(wins) == 0:  # the first window has no carry
                buf_kv = [b if w else b[m:] for b, w in zip(buf_kv, wins)]
                buf_score = [b if w else b[m:] for b, w in zip(buf_score, wins)]
            buf_start = [max(w - 1, 0) * m for w in wins]
            torch._foreach_copy_([st.carry_kv for st in sts] + [st.carry_score for st in sts],
                                 list(win_kv[:, None, :, :d].unbind(0)) + list(win_score[:, None, :, :d].unbind(0)))
        else:
            buf_kv, buf_score, buf_start = win_kv.unbind(0), win_score.unbind(0), [w * m for w in wins]
        cos, sin = self.rotary.cos_sin(torch.tensor(wins, device=kv.device) * m)  # each row's position w·m
        rows = compress_rows_packed(list(buf_kv), list(buf_score), torch.zeros_like(self.ape), self.norm.weight, cos,
                                    sin, buf_start, wins, ratio=m, overlap=self.overlap, rope_dim=self.rope_dim,
                                    eps=self.norm.eps)
        return closing, rows.to(dtype)


class Indexer(nn.Module):
    """Lightning indexer: its own compressed keys, then Σ_h w_h·relu(q_h·k) scores and top-k per query."""

    def __init__(self, args: ModelArgs, compress_ratio: int, rotary: Rotary, dtype: torch.dtype):
        super().__init__()
        self.n_heads, self.head_dim, self.topk, self.ratio = (args.index_n_heads, args.index_head_dim,
                                                              args.index_topk, compress_ratio)
        self.rotary, self.reference_numerics = rotary, args.reference_numerics
        self.softmax_scale = self.head_dim ** -0.5
        self.wq_b = linear(args.q_lora_rank, self.n_heads * self.head_dim, dtype)
        self.weights_proj = linear(args.hidden_size, self.n_heads, dtype)
        self.compressor = Compressor(args, compress_ratio, self.head_dim, rotary, True, dtype, rotate=True)

    def forward(self, x: torch.Tensor, qr: torch.Tensor, seq_ids: torch.Tensor, positions: torch.Tensor,
                keys: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        """x [b,c,dim], qr [b,c,q_lora] of queries seq_ids/positions [b,c], keys (pool, table) of every sequence
        -> compressed-row indices [b,c,k] (-1 = none)."""
        b, c, _ = x.shape
        q = self.wq_b(qr).view(b, c, self.n_heads, self.head_dim)
        cos, sin = self.rotary.cos_sin(positions[0])  # positions are equal across the batch rows
        q = apply_rotary_emb(q, cos, sin)
        if self.reference_numerics:
            q = numerics.fp4_act_quant(numerics.rotate_activation(q))
        weights = self.weights_proj(x).float() * self.n_heads ** -0.5
        return indexer_topk(q, keys, weights, self.softmax_scale, seq_ids, positions, self.ratio, self.topk)


class Attention(nn.Module):
    """Shared K=V latent attention over a sliding window plus compressed rows (CSA: top-k, HCA: all), with sinks."""

    def __init__(self, layer_id: int, args: ModelArgs, dtype: torch.dtype):
        super().__init__()
        self.args, self.layer_id = args, layer_id
        self.n_heads, self.head_dim, self.window = args.num_attention_heads, args.head_dim, args.sliding_window
        self.kind, self.ratio = args.attn_types[layer_id], args.compress_ratios[layer_id]
        self.softmax_scale = self.head_dim ** -0.5
        self.rotary = Rotary(args, compressed=self.kind != SLIDING)
        g = args.o_groups
        self.wq_a = linear(args.hidden_size, args.q_lora_rank, dtype)
        self.q_norm = RMSNorm(args.q_lora_rank, args.rms_norm_eps)
        self.wq_b = linear(args.q_lora_rank, self.n_heads * self.head_dim, dtype)
        self.wkv = linear(args.hidden_size, self.head_dim, dtype)
        self.kv_norm = RMSNorm(self.head_dim, args.rms_norm_eps)
        self.wo_a = linear(self.n_heads * self.head_dim // g, g * args.o_lora_rank, dtype)
        self.wo_b = linear(g * args.o_lora_rank, args.hidden_size, dtype)
        self.attn_sink = nn.Parameter(torch.zeros(self.n_heads, dtype=torch.float32))
        self.compressor = (Compressor(args, self.ratio, self.head_dim, self.rotary, self.kind == CSA, dtype)
                           if self.kind != SLIDING else None)
        self.indexer = Indexer(args, self.ratio, self.rotary, dtype) if self.kind == CSA else None

    def forward(self, x: torch.Tensor, pk: Packing) -> torch.Tensor:
        """x [b,s,dim] (normed), the tokens of pk's spans -> [b,s,dim]; reads and updates each span's layer state."""
        b, s, _ = x.shape
        h, d, eps = self.n_heads, self.head_dim, self.args.rms_norm_eps
        cos, sin = self.rotary.cos_sin(pk.positions)
        qr = self.q_norm(self.wq_a(x))  # [b,s,q_lora]; reused by the indexer
        q = rmsnorm_rope(self.wq_b(qr).view(b, s, h, d), None, cos, sin, eps)  # per-head, unweighted
        kv = rmsnorm_rope(self.wkv(x), self.kv_norm.weight, cos, sin, self.kv_norm.eps)  # [b,s,d]
        if self.args.reference_numerics:
            kv = numerics.act_quant_kv(kv, self.args.qk_rope_head_dim)
        icomp = self.indexer.compressor if self.indexer is not None else None
        pools, keys, n_comp = pk.attention_rows(self.layer_id, x, kv, self.compressor, icomp)
        # the kernels bound their own score buffers (the indexer's too), so only the attended rows size a chunk
        n_keys = self.window + (min(self.args.index_topk, n_comp) if self.indexer is not None else n_comp)
        chunk = max(1, self.args.attn_chunk_elems // max(1, n_keys * (d + h) * b))
        seq_ids, positions = pk.seq_ids(b), pk.positions[None].expand(b, s)
        out = []
        for c0 in range(0, s, chunk):
            c = slice(c0, c0 + chunk)
            sel = None
            if self.indexer is not None:  # CSA: the indexer's picks among the compressed rows
                sel = self.indexer(x[:, c], qr[:, c], seq_ids[:, c], positions[:, c], keys)
            out.append(attend(q[:, c], seq_ids[:, c], positions[:, c], pools, self.attn_sink, self.softmax_scale,
                              self.window, sel))
        o = inverse_rope(torch.cat(out, dim=1), cos, sin)  # [b,s,h,d]
        g = self.args.o_groups
        o = o.reshape(b, s, g, -1)
        if hasattr(self.wo_a, "grouped"):  # weights kept quantized (inference.model.quant_linear)
            return self.wo_b(self.wo_a.grouped(o, g).flatten(2))
        wo_a = self.wo_a.weight.view(g, self.args.o_lora_rank, -1)
        o = torch.einsum("bsgi,goi->bsgo", o, wo_a)
        return self.wo_b(o.flatten(2))


class Gate(nn.Module):
    """Router: sqrt-softplus scores, top-k by score + bias (or tid2eid lookup in hash layers), routed scaling."""

    def __init__(self, layer_id: int, args: ModelArgs, dtype: torch.dtype):
        super().__init__()
        self.topk, self.score_func = args.num_experts_per_tok, args.scoring_func
        self.route_scale, self.norm_topk = args.routed_scaling_factor, args.norm_topk_prob
        self.hash = args.is_hash_layer(layer_id)
        self.weight = nn.Parameter(torch.zeros(args.n_routed_experts, args.hidden_size, dtype=dtype))
        if self.hash:
            self.register_buffer("tid2eid", torch.zeros(args.vocab_size, self.topk, dtype=torch.int64))
            self.bias = None
        else:
            self.bias = nn.Parameter(torch.zeros(args.n_routed_experts, dtype=torch.float32))

    def forward(self, x: torch.Tensor, input_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x [n,dim], input_ids [n] -> weights [n,k] fp32, expert indices [n,k]."""
        logits = F.linear(x.float(), self.weight.float())
        if self.score_func == "softmax":
            scores = logits.softmax(dim=-1)
        elif self.score_func == "sigmoid":
            scores = logits.sigmoid()
        else:
            scores = F.softplus(logits).sqrt()
        if self.hash:
            idx = self.tid2eid[input_ids]
        else:
            idx = (scores + self.bias).topk(self.topk, dim=-1).indices
        weights = scores.gather(1, idx)
        if self.norm_topk and self.score_func != "softmax":
            weights = weights / (weights.sum(dim=-1, keepdim=True) + 1e-20)
        return weights * self.route_scale, idx


class Expert(nn.Module):
    """SwiGLU expert with the clamp: silu(min(w1·x, L)) * clamp(w3·x, -L, L), then w2."""

    def __init__(self, dim: int, inter_dim: int, swiglu_limit: float, dtype: torch.dtype):
        super().__init__()
        self.w1, self.w2, self.w3 = linear(dim, inter_dim, dtype), linear(inter_dim, dim, dtype), linear(
            dim, inter_dim, dtype)
        self.limit = swiglu_limit

    def forward(self, x: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
        gate, up = self.w1(x).float(), self.w3(x).float()
        if self.limit > 0:
            gate, up = gate.clamp(max=self.limit), up.clamp(min=-self.limit, max=self.limit)
        h = F.silu(gate) * up
        if weights is not None:
            h = h * weights
        return self.w2(h.to(x.dtype))


class MoE(nn.Module):
    """Routed experts (hash or scored) plus the shared expert; accumulates in fp32."""

    def __init__(self, layer_id: int, args: ModelArgs, dtype: torch.dtype):
        super().__init__()
        self.gate = Gate(layer_id, args, dtype)
        inter = args.moe_intermediate_size
        self.experts = nn.ModuleList(Expert(args.hidden_size, inter, args.swiglu_limit, dtype)
                                     for _ in range(args.n_routed_experts))
        self.shared_experts = Expert(args.hidden_size, inter * args.n_shared_experts, args.swiglu_limit, dtype) \
            if args.n_shared_experts else None

    def forward(self, x: torch.Tensor, input_ids: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        x = x.reshape(-1, shape[-1])
        weights, idx = self.gate(x, input_ids.reshape(-1))
        if not isinstance(self.experts, nn.ModuleList):  # quantized: one grouped GEMM over tokens sorted by expert
            y = self.experts(x, weights, idx)
            if self.shared_experts is not None:
                y += self.shared_experts(x).float()
            return y.to(x.dtype).view(shape)
        if x.shape[0] == 1 and not x.is_cuda:  # one token (a decode step): no counting and gathering
            picks = idx[0].tolist()
            if len(set(picks)) == len(picks):
                y = None  # sum in ascending expert order from zero, as index_add_ below does
                for e in sorted(picks):
                    s = picks.index(e)
                    out = self.experts[e](x, weights[:, s : s + 1]).float()
                    y = out if y is None else y.add_(out)
                if self.shared_experts is not None:
                    y += self.shared_experts(x).float()
                return y.to(x.dtype).view(shape)
        y = torch.zeros(x.shape, dtype=torch.float32, device=x.device)
        counts = torch.bincount(idx.flatten(), minlength=len(self.experts)).tolist()
        if not x.is_cuda:  # (token, slot) picks grouped by expert with one sort, summed with one index_add_
            order = idx.flatten().argsort(stable=True)  # within an expert: ascending (token, slot), as torch.where
            tok, w = order // idx.shape[1], weights.flatten()[order, None]
            outs, a = [], 0
            for e, cnt in enumerate(counts):
                if cnt:
                    outs.append(self.experts[e](x[tok[a : a + cnt]], w[a : a + cnt]).float())
                    a += cnt
            # index_add_ on CPU adds in source order: each token's sum runs from zero in ascending expert order,
            # as one index_add_ per expert does
            y.index_add_(0, tok, torch.cat(outs))
        else:
            for e, cnt in enumerate(counts):
                if cnt:
                    tok, slot = torch.where(idx == e)
                    y.index_add_(0, tok, self.experts[e](x[tok], weights[tok, slot, None]).float())
        if self.shared_experts is not None:
            y += self.shared_experts(x).float()
        return y.to(x.dtype).view(shape)


def hc_mix(x: torch.Tensor, fn: torch.Tensor, eps: float) -> torch.Tensor:
    """x [b,s,hc,dim] -> (fn · flatten(x)) · rsqrt(mean(x²)+eps) in fp32."""
    flat = x.flatten(2).float()
    return F.linear(flat, fn.float()) * torch.rsqrt(flat.square().mean(-1, keepdim=True) + eps)


class Block(nn.Module):
    """One layer: mHC around attention and around the MoE, residual kept as hc_mult streams."""

    def __init__(self, layer_id: int, args: ModelArgs, dtype: torch.dtype):
        super().__init__()
        self.args, self.layer_id = args, layer_id
        hc, dim = args.hc_mult, args.hidden_size
        mix = (2 + hc) * hc
        self.attn_norm, self.ffn_norm = RMSNorm(dim, args.rms_norm_eps), RMSNorm(dim, args.rms_norm_eps)
        self.attn = Attention(layer_id, args, dtype)
        self.ffn = MoE(layer_id, args, dtype)
        for site in ("attn", "ffn"):
            setattr(self, f"hc_{site}_fn", nn.Parameter(torch.zeros(mix, hc * dim, dtype=torch.float32)))
            setattr(self, f"hc_{site}_base", nn.Parameter(torch.zeros(mix, dtype=torch.float32)))
            setattr(self, f"hc_{site}_scale", nn.Parameter(torch.ones(3, dtype=torch.float32)))

    def hc_pre(self, x: torch.Tensor, fn, scale, base) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Collapse the hc streams x [b,s,hc,dim] -> (y [b,s,dim], post [b,s,hc], comb [b,s,hc,hc]) (kernels.mhc)."""
        a = self.args
        b, s, hc, dim = x.shape
        y, post, comb = hc_pre(x.reshape(b * s, hc, dim), fn, scale, base, iters=a.hc_sinkhorn_iters,
                               norm_eps=a.rms_norm_eps, hc_eps=a.hc_eps)
        return y.view(b, s, dim), post.view(b, s, hc), comb.view(b, s, hc, hc)

    @staticmethod
    def hc_post(y: torch.Tensor, residual: torch.Tensor, post: torch.Tensor, comb: torch.Tensor) -> torch.Tensor:
        """Expand the sub-layer output y [b,s,dim] back into the streams: post·y + combᵀ·residual [b,s,hc,dim]."""
        b, s, hc, dim = residual.shape
        out = hc_post(y.reshape(b * s, dim), residual.reshape(b * s, hc, dim), post.reshape(b * s, hc),
                      comb.reshape(b * s, hc, hc))
        return out.view(b, s, hc, dim)

    def forward(self, x: torch.Tensor, pk: Packing, input_ids: torch.Tensor) -> torch.Tensor:
        """x [b,s,hc,dim] -> [b,s,hc,dim]."""
        y, post, comb = self.hc_pre(x, self.hc_attn_fn, self.hc_attn_scale, self.hc_attn_base)
        x = self.hc_post(self.attn(self.attn_norm(y), pk), x, post, comb)
        y, post, comb = self.hc_pre(x, self.hc_ffn_fn, self.hc_ffn_scale, self.hc_ffn_base)
        return self.hc_post(self.ffn(self.ffn_norm(y), input_ids), x, post, comb)


def hc_head(x: torch.Tensor, fn, scale, base, norm_eps: float, hc_eps: float) -> torch.Tensor:
    """Final stream collapse: Σ_i (σ(mix·scale + base)+eps)_i · x_i: [b,s,hc,dim] -> [b,s,dim]."""
    pre = torch.sigmoid(hc_mix(x, fn, norm_eps) * scale.float() + base.float()) + hc_eps
    return (pre[..., None] * x.float()).sum(dim=2).to(x.dtype)


class MTPBlock(Block):
    """Multi-token-prediction block: embeds the next token, mixes it with the target's last residual, one block."""

    def __init__(self, layer_id: int, args: ModelArgs, dtype: torch.dtype):
        super().__init__(layer_id, args, dtype)
        dim, hc = args.hidden_size, args.hc_mult
        self.e_proj, self.h_proj = linear(dim, dim, dtype), linear(dim, dim, dtype)
        self.enorm, self.hnorm, self.norm = (RMSNorm(dim, args.rms_norm_eps) for _ in range(3))
        self.hc_head_fn = nn.Parameter(torch.zeros(hc, hc * dim, dtype=torch.float32))
        self.hc_head_base = nn.Parameter(torch.zeros(hc, dtype=torch.float32))
        self.hc_head_scale = nn.Parameter(torch.ones(1, dtype=torch.float32))

    def forward(self, x_last: torch.Tensor, e: torch.Tensor, pk: Packing, input_ids: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """x_last [b,s,hc,dim] (target residual before hc_head), e [b,s,dim] (embedding of the next tokens)
        -> (hidden after norm [b,s,dim], new residual [b,s,hc,dim])."""
        x = self.e_proj(self.enorm(e))[:, :, None] + self.h_proj(self.hnorm(x_last))
        x = super().forward(x, pk, input_ids)
        a = self.args
        y = hc_head(x, self.hc_head_fn, self.hc_head_scale, self.hc_head_base, a.rms_norm_eps, a.hc_eps)
        return self.norm(y), x


class Transformer(nn.Module):
    """Embedding, the V4 blocks, hc head, final norm and output head; plus the MTP block(s)."""

    def __init__(self, args: ModelArgs, dtype: torch.dtype = torch.bfloat16):
        super().__init__()
        self.args, self.dtype = args, dtype
        dim, hc = args.hidden_size, args.hc_mult
        self.embed = nn.Embedding(args.vocab_size, dim, dtype=dtype)
        self.layers = nn.ModuleList(Block(i, args, dtype) for i in range(args.num_hidden_layers))
        self.norm = RMSNorm(dim, args.rms_norm_eps)
        self.head = Head(dim, args.vocab_size, dtype)
        self.hc_head_fn = nn.Parameter(torch.zeros(hc, hc * dim, dtype=torch.float32))
        self.hc_head_base = nn.Parameter(torch.zeros(hc, dtype=torch.float32))
        self.hc_head_scale = nn.Parameter(torch.ones(1, dtype=torch.float32))
        n = args.num_hidden_layers
        self.mtp = nn.ModuleList(MTPBlock(n + i, args, dtype) for i in range(args.num_nextn_predict_layers))

    def forward(self, input_ids: torch.Tensor, pk: Packing) -> torch.Tensor:
        """input_ids [b,s], the tokens of pk's spans -> the final residual streams [b,s,hc,dim] (before hc_head)."""
        a, (b, s) = self.args, input_ids.shape
        x = self.embed(input_ids)[:, :, None].expand(b, s, a.hc_mult, a.hidden_size).contiguous()
        for layer in self.layers:
            x = layer(x, pk, input_ids)
        return x

    def forward_mtp(self, x_last: torch.Tensor, next_ids: torch.Tensor, pk: Packing, depth: int = 0
                    ) -> tuple[torch.Tensor, torch.Tensor]:
        """MTP layer `depth`: draft logits [b,s,vocab] for the tokens after next_ids, and its residual streams."""
        h, x = self.mtp[depth](x_last, self.embed(next_ids), pk, next_ids)
        return self.head(h).float(), x

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Residual streams [b,s,hc,dim] -> fp32 logits [b,s,vocab]."""
        a = self.args
        y = hc_head(x, self.hc_head_fn, self.hc_head_scale, self.hc_head_base, a.rms_norm_eps, a.hc_eps)
        return self.head(self.norm(y)).float()


def count_parameters(model: Transformer, include_mtp: bool = False) -> int:
    return sum(p.numel() for n, p in model.named_parameters() if include_mtp or not n.startswith("mtp."))
