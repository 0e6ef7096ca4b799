"""DeepSeek's reference numerics that HF leaves out: KV FP8 fake-quant, indexer Hadamard + FP4.
What they are and when they are on: docs/model.md#reference-numerics.

Scale rule (REF `fast_round_scale`): s = 2^ceil(log2(amax · fp32(1/fp_max))), the smallest power of two with
amax/s ≤ fp_max, read off the exponent bits. amax is floored at 1e-4 (FP8) and 6·2^-126 (FP4) as in REF.
Values are rounded to the format (e4m3 / e2m1, nearest-even), multiplied back by s and returned in the input dtype.
"""

from __future__ import annotations

import argparse
from typing import Literal

import torch

from inference.checkpoint.quant import FP4_LUT, FP4_MAX, FP8_MAX, ceil_log2, e2m1_codes

KV_BLOCK = 64  # REF: act_quant(kv[..., :-rd], 64, scale_fmt, ...)
FP4_BLOCK = 32
FP8_AMAX_FLOOR = 1e-4
FP4_AMAX_FLOOR = 6 * 2.0**-126


def reference_numerics_default(config: dict) -> bool:
    """On exactly when the checkpoint's config.json has a quantization_config (a release checkpoint)."""
    return bool(config.get("quantization_config"))


def resolve_reference_numerics(config: dict, override: Literal["on", "off"] | bool | None = None) -> bool:
    """The switch value: an explicit override (`--reference-numerics on|off`, a server option) wins over the default."""
    if override is None:
        return reference_numerics_default(config)
    if isinstance(override, bool):
        return override
    if override not in ("on", "off"):
        raise ValueError(f"reference numerics must be 'on' or 'off', got {override!r}")
    return override == "on"


def add_reference_numerics_arg(parser: argparse.ArgumentParser) -> None:
    """`--reference-numerics on|off` for the tools and the server; absent means "from config.json"."""
    parser.add_argument(
        "--reference-numerics", choices=("on", "off"), default=None,
        help="DeepSeek reference numerics (KV FP8 and indexer FP4 fake-quant, Hadamard); "
        "default: on exactly when config.json has a quantization_config",
    )


def act_quant_kv(kv: torch.Tensor, rope_dim: int) -> torch.Tensor:
    """FP8 e4m3 fake-quant of kv[..., :-rope_dim] in blocks of 64 with ue8m0 scales; rope dims untouched.

    A trailing partial block (nope dims not a multiple of 64, as in tiny test configs) gets its own scale.
    """
    if not 0 <= rope_dim <= kv.size(-1):
        raise ValueError(f"rope_dim {rope_dim} is outside 0..{kv.size(-1)} (the last dim of kv)")
    nope = kv.size(-1) - rope_dim
    out = kv.clone()
    out[..., :nope] = _fake_quant(kv[..., :nope], KV_BLOCK, FP8_MAX, FP8_AMAX_FLOOR, _round_e4m3)
    return out


def fp4_act_quant(x: torch.Tensor, block: int = FP4_BLOCK) -> torch.Tensor:
    """FP4 e2m1 fake-quant over blocks of `block` along the last dim (must divide it), ue8m0 scales."""
    if x.size(-1) % block:
        raise ValueError(f"last dim {x.size(-1)} is not a multiple of the FP4 block {block}")
    return _fake_quant(x, block, FP4_MAX, FP4_AMAX_FLOOR, _round_e2m1)


def rotate_activation(x: torch.Tensor) -> torch.Tensor:
    """Normalized Walsh–Hadamard transform (Sylvester order, scale n^-1/2) over the last dim, a power of two."""
    n = x.size(-1)
    if n < 1 or n & (n - 1):
        raise ValueError(f"rotate_activation needs a power-of-two last dim, got {n}")
    lead = x.shape[:-1]
    y = x.float()
    h = 1
    while h < n:  # one butterfly stage per index bit; stages commute, so the order is free
        y = y.reshape(*lead, n // (2 * h), 2, h)
        y = torch.stack((y[..., 0, :] + y[..., 1, :], y[..., 0, :] - y[..., 1, :]), dim=-2)
        h *= 2
    return (y.reshape(*lead, n) * n**-0.5).to(x.dtype)


def _fake_quant(x: torch.Tensor, block: int, fp_max: float, amax_floor: float, round_fn) -> torch.Tensor:
    """Quantize-dequantize x per `block` along the last dim (last block may be partial); dtype preserved."""
    n = x.size(-1)
    if n == 0:
        return x.clone()
    nb = -(-n // block)
    xf = torch.nn.functional.pad(x.float(), (0, nb * block - n)).unflatten(-1, (nb, block))  # [..., nb, block]
    amax = xf.abs().amax(-1, keepdim=True).clamp_min(amax_floor)
    s = torch.ldexp(torch.ones_like(amax), ceil_log2(amax * torch.tensor(1 / fp_max, dtype=torch.float32)))
    q = round_fn((xf / s).clamp(-fp_max, fp_max))
    return (q * s).flatten(-2)[..., :n].to(x.dtype)


def _round_e4m3(v: torch.Tensor) -> torch.Tensor:
    return v.to(torch.float8_e4m3fn).float()


def _round_e2m1(v: torch.Tensor) -> torch.Tensor:
    return torch.tensor(FP4_LUT, dtype=torch.float32, device=v.device)[e2m1_codes(v)]
