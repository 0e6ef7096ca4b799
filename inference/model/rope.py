"""Interleaved partial RoPE: plain on sliding-only layers, YaRN (no mscale) on compressed layers."""

import math

import torch

from inference.model.config import SLIDING, ModelArgs


def precompute_freqs_cis(args: ModelArgs, compressed: bool, max_pos: int | None = None) -> torch.Tensor:
    """Inverse frequencies [rope/2] (fp32); YaRN only for compressed layers, as in DeepSeek's reference."""
    dim = args.qk_rope_head_dim
    base = args.compress_rope_theta if compressed else args.rope_theta
    freqs = 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.float32) / dim))
    if compressed and args.yarn:
        orig = args.original_max_position_embeddings
        low = math.floor(dim * math.log(orig / (args.beta_fast * 2 * math.pi)) / (2 * math.log(base)))
        high = math.ceil(dim * math.log(orig / (args.beta_slow * 2 * math.pi)) / (2 * math.log(base)))
        low, high = max(low, 0), min(high, dim - 1)
        if low == high:
            high += 0.001
        ramp = ((torch.arange(dim // 2, dtype=torch.float32) - low) / (high - low)).clamp(0, 1)
        smooth = 1 - ramp  # 1 = keep (high frequency), 0 = interpolate by the factor
        freqs = freqs / args.rope_factor * (1 - smooth) + freqs * smooth
    return freqs


class Rotary:
    """cos/sin tables for one rope kind, computed on demand for any positions (no [max_pos] table)."""

    def __init__(self, args: ModelArgs, compressed: bool):
        self.inv_freq = precompute_freqs_cis(args, compressed)

    def cos_sin(self, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """positions [s] (int) -> cos, sin [s, rope/2] fp32, on the device of positions."""
        if self.inv_freq.device != positions.device:  # not a module buffer: follow the inputs (model.to(cuda))
            self.inv_freq = self.inv_freq.to(positions.device)
        ang = positions.to(torch.float32)[:, None] * self.inv_freq[None, :]
        return ang.cos(), ang.sin()


def rotary_for_layer(args: ModelArgs, layer_id: int) -> Rotary:
    return Rotary(args, compressed=args.attn_types[layer_id] != SLIDING)


def apply_rotary_emb(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, inverse: bool = False) -> torch.Tensor:
    """Rotate the last 2*cos.shape[-1] channels of x in interleaved pairs (x[2i], x[2i+1]).

    x: [..., s, (h,) d] with cos/sin [s, rope/2] broadcast over any head axis between s and d."""
    rd = cos.shape[-1] * 2
    extra = x.dim() - 1 - cos.dim()  # axes between s and the pair axis
    shape = cos.shape[:-1] + (1,) * extra + cos.shape[-1:]
    c, s = cos.reshape(shape), sin.reshape(shape)
    if inverse:
        s = -s
    nope, rope = x[..., :-rd], x[..., -rd:]
    pairs = rope.float().unflatten(-1, (-1, 2))
    x0, x1 = pairs[..., 0], pairs[..., 1]
    out = torch.stack((x0 * c - x1 * s, x0 * s + x1 * c), dim=-1).flatten(-2).to(x.dtype)
    return torch.cat([nope, out], dim=-1)
