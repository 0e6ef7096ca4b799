"""The sharded pieces swapped into a loaded model (inference.parallel.shard): a row-parallel linear that sums its
partial outputs over the tensor-parallel group, and the MoE whose routed experts are split over the expert-parallel
group (docs/parallel.md: every rank holds every token, so dispatch is a local mask and combine one all-reduce)."""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn


def all_reduce(t: torch.Tensor, group) -> torch.Tensor:
    if group is not None:
        dist.all_reduce(t, group=group)
    return t


class ReducedLinear(nn.Module):
    """A linear over this rank's slice of the input features; the partial outputs summed over `group`."""

    def __init__(self, inner: nn.Module, group):
        super().__init__()
        self.inner, self.group = inner, group

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return all_reduce(self.inner(x), self.group)


class GatheredLinear(nn.Module):
    """A linear whose input arrives split over `group` (rank order): the input gathered, this rank's output rows
    computed over the whole input, the outputs gathered. Two all-gathers instead of one all-reduce, but each output
    is the single-process dot product, so FP8-rounded activations downstream round the same (reference numerics)."""

    def __init__(self, inner: nn.Module, group, size: int):
        super().__init__()
        self.inner, self.group, self.size = inner, group, size

    def _gather(self, t: torch.Tensor) -> torch.Tensor:
        parts = [torch.empty_like(t) for _ in range(self.size)]
        dist.all_gather(parts, t.contiguous(), group=self.group)
        return torch.cat(parts, dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._gather(self.inner(self._gather(x)))


class VocabEmbedding(nn.Module):
    """The embedding rows v0 … v0+n-1 of this rank; other ids give zeros, and the sum over `group` is every row
    (exact: one term is non-zero)."""

    def __init__(self, weight: torch.Tensor, v0: int, group):
        super().__init__()
        self.weight, self.v0, self.group = nn.Parameter(weight, requires_grad=False), v0, group

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        local = ids - self.v0
        hit = (local >= 0) & (local < self.weight.shape[0])
        out = F.embedding(local.clamp(0, self.weight.shape[0] - 1), self.weight) * hit[..., None].to(self.weight.dtype)
        return all_reduce(out, self.group)


class VocabHead(nn.Module):
    """The output head's vocabulary rows of this rank; the logits gathered over `group` in rank order."""

    def __init__(self, inner: nn.Module, group, size: int):
        super().__init__()
        self.inner, self.group, self.size = inner, group, size

    @property
    def weight(self) -> torch.Tensor:  # the runner and engine read the model's device here
        return self.inner.weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.inner(x).contiguous()
        parts = [torch.empty_like(y) for _ in range(self.size)]
        dist.all_gather(parts, y, group=self.group)
        return torch.cat(parts, dim=-1)


class ParallelMoE(nn.Module):
    """The router (replicated), this rank's routed experts e0 … e0+len(experts)-1 and the shared expert (its
    intermediate features split over the tensor-parallel group when `shared_split`, else whole)."""

    def __init__(self, gate: nn.Module, experts, e0: int, shared: nn.Module | None, shared_split: bool,
                 ep_group, tp_group, same_group: bool):
        super().__init__()
        self.gate, self.experts, self.shared_experts = gate, experts, shared
        self.e0, self.shared_split = e0, shared_split
        self.ep_group, self.tp_group, self.same_group = ep_group, tp_group, same_group

    def _routed(self, x: torch.Tensor, weights: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        """Σ over this rank's experts of weight · expert(x) for the (token, slot) pairs routed to them [n, dim]."""
        y = torch.zeros(x.shape, dtype=torch.float32, device=x.device)
        local = idx - self.e0
        tok, slot = torch.where((local >= 0) & (local < len(self.experts)))
        if tok.numel() == 0:
            return y
        if not isinstance(self.experts, nn.ModuleList):  # QuantExperts: one grouped GEMM over the local pairs
            return y.index_add_(0, tok, self.experts(x[tok], weights[tok, slot, None], local[tok, slot, None]))
        counts = torch.bincount(local[tok, slot], minlength=len(self.experts)).tolist()
        for e, cnt in enumerate(counts):
            if cnt:
                t, s = torch.where(local == e)
                y.index_add_(0, t, self.experts[e](x[t], weights[t, s, None]).float())
        return y

    def forward(self, x: torch.Tensor, input_ids: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        x = x.reshape(-1, shape[-1])
        weights, idx = self.gate(x, input_ids.reshape(-1))
        y = self._routed(x, weights, idx)
        shared = self.shared_experts(x).float() if self.shared_experts is not None else None
        if shared is not None and self.shared_split and self.same_group:
            y = all_reduce(y + shared, self.ep_group)  # one combine for both partial sums
        else:
            y = all_reduce(y, self.ep_group)
            if shared is not None:
                y = y + (all_reduce(shared, self.tp_group) if self.shared_split else shared)
        return y.to(x.dtype).view(shape)
