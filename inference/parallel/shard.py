"""Shard a loaded model for one rank (docs/parallel.md): attention heads and the shared expert split over the
tensor-parallel group where the split falls on whole quantization blocks, routed experts split over the
expert-parallel group, everything else (embedding, router, KV projections, compressors, indexers, mHC, head)
replicated. Slices are copied out, so the full tensors are freed with the unsharded model."""

from __future__ import annotations

import dataclasses
import logging

import torch
from torch import nn

from inference.errors import ConfigError
from inference.model.model import Attention, Block, MoE, Transformer
from inference.model.quant_linear import FP8_BLOCK, QuantExperts, QuantLinear, act_fp8_hook
from inference.parallel.groups import RankContext
from inference.parallel.layers import GatheredLinear, ParallelMoE, ReducedLinear, VocabEmbedding, VocabHead

log = logging.getLogger("inference.parallel")


def _aligned(model: Transformer, mod: nn.Module, dim: int, parts: int) -> bool:
    """Whether splitting this linear's output rows (dim 0) or input features (dim 1) `parts` ways keeps every
    piece on whole 128-blocks where that matters: FP8 weight scales (either dim), and FP8-rounded activations
    (reference numerics round the input per 128 features, so an input split must not cut a block)."""
    total = (mod.out_features, mod.in_features)[dim]
    fp8 = isinstance(mod, QuantLinear)
    unit = FP8_BLOCK if fp8 or (dim == 1 and model.args.reference_numerics) else 1
    return total % parts == 0 and (total // parts) % unit == 0


def _tag(t: torch.Tensor, dim: int, lo: int, hi: int) -> torch.Tensor:
    """Mark a sliced tensor with where it lies in the checkpoint's tensor (inference.parallel.load reads by it)."""
    t.shard_slice = (dim, lo, hi)
    return t


def _slice(mod: nn.Module, dim: int, lo: int, hi: int) -> nn.Module:
    """Rows (dim 0: output features) or columns (dim 1: input features) lo … hi-1 of a linear, as a new module."""
    if isinstance(mod, QuantLinear):
        out_f, in_f = (hi - lo, mod.in_features) if dim == 0 else (mod.out_features, hi - lo)
        new = QuantLinear(in_f, out_f, mod.fmt, mod.scale.dtype == torch.float32, mod.act_fp8)
        if mod.fmt == "fp8":
            w, s = (lo, hi), (lo // FP8_BLOCK, -(-hi // FP8_BLOCK))
        else:  # fp4: [out, in/2] packed, scales [out, in/32]
            w, s = ((lo, hi), (lo, hi)) if dim == 0 else ((lo // 2, hi // 2), (lo // 32, hi // 32))
        new.weight = _tag(mod.weight.narrow(dim, w[0], w[1] - w[0]).clone(), dim, *w)
        new.scale = _tag(mod.scale.narrow(dim, s[0], s[1] - s[0]).clone(), dim, *s)
        return new
    w = mod.weight.data.narrow(dim, lo, hi - lo)
    new = nn.Linear(w.shape[1], w.shape[0], bias=False, dtype=w.dtype, device=w.device)
    new.weight.data = w.clone()
    _tag(new.weight, dim, lo, hi)
    if any(h is act_fp8_hook for h in mod._forward_pre_hooks.values()):
        new.register_forward_pre_hook(act_fp8_hook)
    return new


def shard_attention(model: Transformer, attn: Attention, ctx: RankContext) -> bool:
    """Heads r·h/T … of this rank's shard; wo_a's groups follow the heads, wo_b sums over the group. False (left
    whole) when the heads, the output groups or a quantization block do not split evenly.

    Under reference numerics wo_b gathers its input and splits its output instead (GatheredLinear): a partial-sum
    all-reduce adds in another order than one matmul, and the FP8/FP4 rounding of the next layers' activations
    would turn those last-bit differences into different tokens."""
    t, r = ctx.spec.tp, ctx.tp_rank
    h, g, d, lora = attn.n_heads, attn.args.o_groups, attn.head_dim, attn.args.o_lora_rank
    exact = model.args.reference_numerics
    if t == 1 or h % t or g % t or not (_aligned(model, attn.wq_b, 0, t) and _aligned(model, attn.wo_a, 0, t)
                                        and _aligned(model, attn.wo_b, 0 if exact else 1, t)):
        return False
    hl, gl = h // t, g // t
    attn.wq_b = _slice(attn.wq_b, 0, r * hl * d, (r + 1) * hl * d)
    attn.attn_sink = nn.Parameter(attn.attn_sink.data[r * hl : (r + 1) * hl].clone())
    _tag(attn.attn_sink, 0, r * hl, (r + 1) * hl)
    attn.wo_a = _slice(attn.wo_a, 0, r * gl * lora, (r + 1) * gl * lora)
    if exact:
        dim = attn.wo_b.out_features // t
        attn.wo_b = GatheredLinear(_slice(attn.wo_b, 0, r * dim, (r + 1) * dim), ctx.tp_group, t)
    else:
        attn.wo_b = ReducedLinear(_slice(attn.wo_b, 1, r * gl * lora, (r + 1) * gl * lora), ctx.tp_group)
    attn.n_heads = hl
    attn.args = dataclasses.replace(attn.args, o_groups=gl)
    return True


def _local_experts(experts, e0: int, e1: int):
    if isinstance(experts, QuantExperts):
        new = QuantExperts(e1 - e0, experts.dim, experts.inter, experts.limit, experts.fmt,
                           experts.w1_scale.dtype == torch.float32, experts.act_fp8)
        for w in ("w1", "w2", "w3"):
            for part in ("weight", "scale"):
                setattr(new, f"{w}_{part}", getattr(experts, f"{w}_{part}")[e0:e1].clone())
        return new
    return nn.ModuleList(experts[e] for e in range(e0, e1))


def shard_moe(model: Transformer, moe: MoE, ctx: RankContext) -> tuple[ParallelMoE, bool]:
    """This rank's routed experts (E/ep of them) and its slice of the shared expert's intermediate features (whole
    when they cannot split on quantization blocks). Under reference numerics w2 gathers its input and splits its
    output (GatheredLinear, as attention's wo_b), so the shared expert's output is whole, not a partial sum."""
    n, ep, t, r = len(moe.experts), ctx.spec.ep, ctx.spec.tp, ctx.tp_rank
    if n % ep:
        raise ConfigError(f"--ep {ep} must divide the {n} routed experts")
    per = n // ep
    e0 = ctx.ep_rank * per
    shared, partial, split = moe.shared_experts, False, False
    exact = model.args.reference_numerics
    splits = (("w1", 0), ("w3", 0), ("w2", 0 if exact else 1))
    if shared is not None and t > 1 and all(_aligned(model, getattr(shared, w), dim, t) for w, dim in splits):
        inter = shared.w1.out_features // t
        lo, hi = r * inter, (r + 1) * inter
        shared.w1, shared.w3 = _slice(shared.w1, 0, lo, hi), _slice(shared.w3, 0, lo, hi)
        if exact:
            d = shared.w2.out_features // t
            shared.w2 = GatheredLinear(_slice(shared.w2, 0, r * d, (r + 1) * d), ctx.tp_group, t)
        else:
            shared.w2, partial = _slice(shared.w2, 1, lo, hi), True
        split = True
    same = ctx.spec.tp == ctx.spec.ep
    return ParallelMoE(moe.gate, _local_experts(moe.experts, e0, e0 + per), e0, shared, partial, ctx.ep_group,
                       ctx.tp_group, same), split


def shard_vocab(model: Transformer, ctx: RankContext) -> bool:
    """The embedding and the output head split by vocabulary rows over the tensor-parallel group (both exact: the
    embedding sums one non-zero term, the head gathers whole logits)."""
    t, r, v = ctx.spec.tp, ctx.tp_rank, model.args.vocab_size
    if t == 1 or v % t or not _aligned(model, model.head, 0, t) or isinstance(model.head, QuantLinear) and (
            v // t) % FP8_BLOCK:
        return False
    n = v // t
    model.embed = VocabEmbedding(model.embed.weight.data[r * n : (r + 1) * n].clone(), r * n, ctx.tp_group)
    _tag(model.embed.weight, 0, r * n, (r + 1) * n)
    model.head = VocabHead(_slice(model.head, 0, r * n, (r + 1) * n), ctx.tp_group, t)
    return True


def shard_model(model: Transformer, ctx: RankContext) -> Transformer:
    """Shard every block (and MTP block) in place for ctx's rank; logs which parts split."""
    vocab = shard_vocab(model, ctx)
    heads = shared = 0
    blocks = [m for m in model.modules() if isinstance(m, Block)]
    for block in blocks:
        heads += shard_attention(model, block.attn, ctx)
        block.ffn, split = shard_moe(model, block.ffn, ctx)
        shared += split
    log.info("rank %d (tp %d/%d, ep %d/%d): attention heads split in %d of %d blocks, shared expert in %d; "
             "%d routed experts per block", ctx.rank, ctx.tp_rank, ctx.spec.tp, ctx.ep_rank, ctx.spec.ep, heads,
             len(blocks), shared, model.args.n_routed_experts // ctx.spec.ep)
    model.parallel_split = {"attention": heads, "shared": shared, "blocks": len(blocks), "vocab": vocab}
    return model
