"""Linear layers and routed experts that keep the release's FP8 / FP4 weights as loaded (`--weights quantized`,
docs/quantized-weights.md) and multiply through kernels.quant_gemm: Triton on CUDA, the plain-torch twins on CPU.

`QuantLinear` replaces an nn.Linear whose checkpoint weight has a scale; `QuantExperts` replaces a layer's routed
experts when they all ship quantized, holding them stacked [E, out, in(/2)] for the grouped GEMM over the tokens
sorted by expert. Both expose the official tensor names in state_dict (per expert for QuantExperts), so the one
loader fills them, and their bytes are the checkpoint's bytes."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from kernels.quant_gemm import act_quant_fp8_torch, dequant_weights, group_tiles, quant_grouped, quant_linear

FP8_BLOCK, FP4_BLOCK = 128, 32


def _storage(out_f: int, in_f: int, fmt: str, scale_float: bool, lead: tuple[int, ...] = ()):
    """Empty (weight, scale) tensors of one format: FP8 [out, in] + [⌈out/128⌉, ⌈in/128⌉], FP4 [out, in/2] +
    [out, in/32]; scales as ue8m0 bytes (uint8) or fp32 (HF float scales)."""
    sdt = torch.float32 if scale_float else torch.uint8
    if fmt == "fp8":
        return (torch.empty(*lead, out_f, in_f, dtype=torch.float8_e4m3fn),
                torch.empty(*lead, -(-out_f // FP8_BLOCK), -(-in_f // FP8_BLOCK), dtype=sdt))
    return (torch.empty(*lead, out_f, in_f // 2, dtype=torch.int8),
            torch.empty(*lead, out_f, in_f // FP4_BLOCK, dtype=sdt))


class QuantLinear(nn.Module):
    """y = x · dequant(weight, scale)ᵀ with the weight kept quantized; `act_fp8` rounds x to FP8 per 128 first."""

    def __init__(self, in_features: int, out_features: int, fmt: str, scale_float: bool = False,
                 act_fp8: bool = False):
        super().__init__()
        self.in_features, self.out_features, self.fmt, self.act_fp8 = in_features, out_features, fmt, act_fp8
        w, s = _storage(out_features, in_features, fmt, scale_float)
        self.register_buffer("weight", w)
        self.register_buffer("scale", s)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lead = x.shape[:-1]
        y = quant_linear(x.reshape(-1, self.in_features), self.weight, self.scale, self.fmt, self.act_fp8)
        return y.view(*lead, self.out_features)

    def dequantized(self, dtype: torch.dtype) -> torch.Tensor:
        return dequant_weights(self.weight, self.scale, self.fmt, dtype)

    def grouped(self, x: torch.Tensor, groups: int) -> torch.Tensor:
        """x [..., g, in/g] -> [..., g, out/g]: group i multiplies rows i·out/g… of the weight (V4's wo_a).
        One grouped GEMM when the groups fall on whole scale blocks, else the weight dequantized for the call."""
        *lead, g, k = x.shape
        o = self.out_features // groups
        if self.fmt == "fp8" and o % FP8_BLOCK == 0 and k == self.in_features:
            n = x[..., 0, 0].numel()
            xs = x.reshape(n, g, k).transpose(0, 1).reshape(g * n, k)
            offsets = torch.arange(g + 1, device=x.device) * n
            w = self.weight.view(g, o, k)
            s = self.scale.view(g, o // FP8_BLOCK, -1)
            y = quant_grouped(xs, w, s, offsets, self.fmt)
            return y.view(g, n, o).transpose(0, 1).reshape(*lead, g, o)
        w = self.dequantized(x.dtype).view(groups, o, -1)
        return torch.einsum("...gi,goi->...go", x, w)


class QuantExperts(nn.Module):
    """A layer's routed experts stacked as released: w1/w3 [E, inter, dim(/2)], w2 [E, dim, inter(/2)] + scales.
    forward sorts the (token, slot) pairs by expert and runs three grouped GEMMs (no loop over experts)."""

    def __init__(self, n_experts: int, dim: int, inter: int, swiglu_limit: float, fmt: str,
                 scale_float: bool = False, act_fp8: bool = False):
        super().__init__()
        self.n_experts, self.dim, self.inter, self.limit, self.fmt, self.act_fp8 = (
            n_experts, dim, inter, swiglu_limit, fmt, act_fp8)
        for name, (o, i) in (("w1", (inter, dim)), ("w2", (dim, inter)), ("w3", (inter, dim))):
            w, s = _storage(o, i, fmt, scale_float, (n_experts,))
            self.register_buffer(f"{name}_weight", w)
            self.register_buffer(f"{name}_scale", s)

    def __len__(self) -> int:
        return self.n_experts

    def _save_to_state_dict(self, destination, prefix, keep_vars):
        """Official names, one view per expert: `{e}.w1.weight`, `{e}.w1.scale`, … (the loader writes through)."""
        for e in range(self.n_experts):
            for w in ("w1", "w2", "w3"):
                destination[f"{prefix}{e}.{w}.weight"] = getattr(self, f"{w}_weight")[e]
                destination[f"{prefix}{e}.{w}.scale"] = getattr(self, f"{w}_scale")[e]

    def _gemm(self, x: torch.Tensor, w: str, offsets: torch.Tensor, tiles: tuple | None) -> torch.Tensor:
        return quant_grouped(x, getattr(self, f"{w}_weight"), getattr(self, f"{w}_scale"), offsets, self.fmt,
                             self.act_fp8, tiles)

    def forward(self, x: torch.Tensor, weights: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        """x [n, dim], routing weights [n, k] fp32, expert ids [n, k] -> Σ_k weight · expert(x) [n, dim] fp32."""
        n, k = idx.shape
        flat = idx.flatten()
        order = torch.argsort(flat, stable=True)
        tok = order // k
        counts = torch.bincount(flat, minlength=self.n_experts)
        offsets = torch.cat([counts.new_zeros(1), torch.cumsum(counts, 0)])
        xs = x[tok]
        tiles = group_tiles(xs, offsets)  # one tile list for the three GEMMs over these rows
        gate, up = self._gemm(xs, "w1", offsets, tiles).float(), self._gemm(xs, "w3", offsets, tiles).float()
        if self.limit > 0:
            gate, up = gate.clamp(max=self.limit), up.clamp(min=-self.limit, max=self.limit)
        h = F.silu(gate) * up * weights.flatten()[order, None]
        out = self._gemm(h.to(x.dtype), "w2", offsets, tiles)
        y = torch.zeros(n, self.dim, dtype=torch.float32, device=x.device)
        return y.index_add_(0, tok, out.float())


def act_fp8_hook(module: nn.Module, inputs: tuple) -> tuple:
    """Forward pre-hook for an nn.Linear that holds a dequantized FP8/FP4 weight: its input rounded to FP8 as the
    quantized path does, so both weight modes compute the same numbers under the reference-numerics switch."""
    return (act_quant_fp8_torch(inputs[0]),) + tuple(inputs[1:])


def resident_bytes(model: nn.Module) -> int:
    """Bytes of every parameter and buffer the model holds (what stays in memory)."""
    seen, total = set(), 0
    for t in list(model.parameters()) + list(model.buffers()):
        if t.data_ptr() not in seen:
            seen.add(t.data_ptr())
            total += t.numel() * t.element_size()
    return total
