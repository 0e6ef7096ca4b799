"""Release weight formats of DeepSeek-V4 (docs/model.md#release-weight-formats): block-FP8 and MXFP4, read and written.

FP8: `float8_e4m3fn` weight [out,in] + `.scale` ue8m0 [ceil(out/128), ceil(in/128)], value = w · scale.
FP4: int8 [out, in/2], two e2m1 codes per byte (low nibble = even column) + `.scale` ue8m0 [out, in/32].
ue8m0 byte b means 2^(b−127). The CPU path dequantizes at load into bf16/fp32.
"""

from __future__ import annotations

import re

import torch

from inference.errors import CheckpointError

FP8_MAX = 448.0
FP4_MAX = 6.0
FP8_BLOCK = 128
FP4_BLOCK = 32
# e2m1 code → value; bit 3 is the sign (same table as transformers' Fp8Dequantize and DeepSeek's convert.py)
FP4_LUT = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, -0.0, -0.5, -1.0, -1.5, -2.0, -3.0, -4.0, -6.0)

# config.json `quantization_config` of the V4 release (FP8 e4m3, ue8m0 128×128 block scales, dynamic activations)
RELEASE_QUANTIZATION_CONFIG = {
    "quant_method": "fp8", "fmt": "e4m3", "scale_fmt": "ue8m0", "weight_block_size": [128, 128],
    "activation_scheme": "dynamic",
}

# Official names whose `.weight` ships as block FP8 (layers.N.* and mtp.0.*); routed experts ship FP4.
_FP8_SUFFIXES = (
    "attn.wq_a", "attn.wq_b", "attn.wkv", "attn.wo_a", "attn.wo_b", "attn.indexer.wq_b",
    "ffn.shared_experts.w1", "ffn.shared_experts.w2", "ffn.shared_experts.w3", "e_proj", "h_proj",
)
_EXPERT = re.compile(r"(^|\.)ffn\.experts\.\d+\.w[123]\.weight$")
_SCALE_SUFFIXES = (".scale", ".weight_scale_inv")


class QuantFormatError(CheckpointError, ValueError):
    """Quantized bytes or scales whose dtype or shape do not fit the release format; the message names both."""


##### Public API #####


def dequantize_fp8(weight: torch.Tensor, scale: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Block-FP8 weight [out,in] times its per-128×128 scale grid [ceil(out/128), ceil(in/128)] → dtype."""
    if weight.dtype != torch.float8_e4m3fn or weight.ndim != 2:
        raise QuantFormatError(f"FP8 weight must be 2-D float8_e4m3fn, got {weight.dtype} {tuple(weight.shape)}")
    out_f, in_f = weight.shape
    grid = (-(-out_f // FP8_BLOCK), -(-in_f // FP8_BLOCK))
    if tuple(scale.shape) != grid:
        raise QuantFormatError(f"FP8 weight {tuple(weight.shape)} needs a scale grid {grid}, got {tuple(scale.shape)}")
    s = scale_to_float(scale)
    s = s.repeat_interleave(FP8_BLOCK, 0).repeat_interleave(FP8_BLOCK, 1)[:out_f, :in_f]  # [out,in]
    return (weight.float() * s).to(dtype)


def dequantize_fp4(packed: torch.Tensor, scale: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """MXFP4 weight packed [out, in/2] with per-32 scales [out, in/32] → dtype [out, in]."""
    codes = _unpack_codes(packed)  # [out,in] int64
    out_f, in_f = codes.shape
    if tuple(scale.shape) != (out_f, in_f // FP4_BLOCK) or in_f % FP4_BLOCK:
        raise QuantFormatError(
            f"FP4 weight with logical shape {(out_f, in_f)} needs scales {(out_f, in_f // FP4_BLOCK)} "
            f"(in divisible by {FP4_BLOCK}), got {tuple(scale.shape)}"
        )
    values = torch.tensor(FP4_LUT, dtype=torch.float32, device=codes.device)[codes]
    return (values * scale_to_float(scale).repeat_interleave(FP4_BLOCK, 1)).to(dtype)


def quantize_fp8_block(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Write w [out,in] as block FP8: scale = 2^ceil(log2(amax/448)) per 128×128 block (1 for all-zero blocks)."""
    if w.ndim != 2 or not w.is_floating_point():
        raise QuantFormatError(f"quantize_fp8_block takes a 2-D float tensor, got {w.dtype} {tuple(w.shape)}")
    out_f, in_f = w.shape
    rows, cols = -(-out_f // FP8_BLOCK), -(-in_f // FP8_BLOCK)
    padded = w.float().new_zeros(rows * FP8_BLOCK, cols * FP8_BLOCK)
    padded[:out_f, :in_f] = w.float()
    amax = padded.view(rows, FP8_BLOCK, cols, FP8_BLOCK).abs().amax(dim=(1, 3))  # [rows,cols]
    exp = _block_exponent(amax, FP8_MAX)
    s = torch.ldexp(torch.ones_like(amax), exp).repeat_interleave(FP8_BLOCK, 0).repeat_interleave(FP8_BLOCK, 1)
    q = (w.float() / s[:out_f, :in_f]).clamp(-FP8_MAX, FP8_MAX).to(torch.float8_e4m3fn)
    return q, exponent_to_e8m0(exp)


def quantize_fp4(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Write w [out,in] as MXFP4: scale = 2^ceil(log2(amax/6)) per 32 columns, e2m1 round-to-nearest-even."""
    if w.ndim != 2 or not w.is_floating_point() or w.shape[1] % FP4_BLOCK:
        raise QuantFormatError(
            f"quantize_fp4 takes a 2-D float tensor with in divisible by {FP4_BLOCK}, got {w.dtype} {tuple(w.shape)}"
        )
    out_f, in_f = w.shape
    blocks = w.float().view(out_f, in_f // FP4_BLOCK, FP4_BLOCK)
    amax = blocks.abs().amax(dim=-1)  # [out, in/32]
    exp = _block_exponent(amax, FP4_MAX)
    scaled = (blocks / torch.ldexp(torch.ones_like(amax), exp).unsqueeze(-1)).clamp(-FP4_MAX, FP4_MAX)
    codes = e2m1_codes(scaled).view(out_f, in_f)
    packed = (codes[:, 0::2] | (codes[:, 1::2] << 4)).to(torch.uint8).view(torch.int8)
    return packed, exponent_to_e8m0(exp)


def release_format(key: str, *, expert_dtype: str | None = "fp4") -> str | None:
    """"fp8", "fp4" or None (shipped unquantized) for an official-name tensor key in the V4 release."""
    if not key.endswith(".weight"):
        return None
    if _EXPERT.search(key):
        return "fp4" if expert_dtype == "fp4" else "fp8"
    stem = key[: -len(".weight")]
    return "fp8" if any(stem == s or stem.endswith("." + s) for s in _FP8_SUFFIXES) else None


def quantize_state_dict(state: dict[str, torch.Tensor], *, expert_dtype: str | None = "fp4") -> dict[str, torch.Tensor]:
    """Release-format copy of an official-name state dict: quantized `X.weight` plus its `X.scale`."""
    out: dict[str, torch.Tensor] = {}
    for key, tensor in state.items():
        fmt = release_format(key, expert_dtype=expert_dtype)
        if fmt is None:
            out[key] = tensor
            continue
        q, s = quantize_fp4(tensor) if fmt == "fp4" else quantize_fp8_block(tensor)
        out[key], out[key[: -len(".weight")] + ".scale"] = q, s
    return out


def dequantize_state_dict(
    state: dict[str, torch.Tensor], dtype: torch.dtype = torch.float32
) -> dict[str, torch.Tensor]:
    """Fold every quantized weight with a `.scale` (official) or `.weight_scale_inv` (HF) companion into dtype."""
    out: dict[str, torch.Tensor] = {}
    for key, tensor in state.items():
        if key.endswith(_SCALE_SUFFIXES):
            if _weight_key(key) not in state:
                raise QuantFormatError(f"scale {key} has no weight {_weight_key(key)} next to it")
            continue
        scale = _scale_of(state, key)
        if scale is None:
            if is_quantized(tensor):
                raise QuantFormatError(f"{key} is {tensor.dtype} but has no .scale / .weight_scale_inv companion")
            out[key] = tensor
        elif tensor.dtype == torch.float8_e4m3fn:
            out[key] = dequantize_fp8(tensor, scale, dtype)
        else:
            out[key] = dequantize_fp4(tensor, scale, dtype)
    return out


def is_quantized(tensor: torch.Tensor) -> bool:
    """True for the dtypes that carry release-format weights (FP8, packed FP4)."""
    return tensor.dtype in (torch.float8_e4m3fn, torch.int8, torch.uint8, torch.float4_e2m1fn_x2)


##### Bit-level helpers #####


def scale_to_float(scale: torch.Tensor) -> torch.Tensor:
    """ue8m0 scales (float8_e8m0fnu, or raw uint8 bytes) → fp32 powers of two; float scales pass through."""
    if scale.dtype in (torch.float8_e8m0fnu, torch.uint8):
        exp = scale.contiguous().view(torch.uint8).to(torch.int32) - 127
        return torch.ldexp(torch.ones(exp.shape, dtype=torch.float32, device=exp.device), exp)
    if scale.is_floating_point():
        return scale.float()
    raise QuantFormatError(f"scale dtype {scale.dtype} is not ue8m0 (float8_e8m0fnu / uint8) or float")


def ceil_log2(x: torch.Tensor) -> torch.Tensor:
    """Exact ceil(log2(x)) for positive fp32 x, from the exponent bits (DeepSeek's fast_log2_ceil)."""
    mant, exp = torch.frexp(x.float())  # x = mant · 2^exp, mant in [0.5, 1)
    return torch.where(mant == 0.5, exp - 1, exp).to(torch.int32)


def exponent_to_e8m0(exp: torch.Tensor) -> torch.Tensor:
    """Integer exponents e → float8_e8m0fnu scales 2^e (byte e+127)."""
    if exp.numel() and (exp.min() < -127 or exp.max() > 127):
        raise QuantFormatError(f"scale exponents {int(exp.min())}..{int(exp.max())} do not fit ue8m0 (-127..127)")
    return (exp + 127).to(torch.uint8).view(torch.float8_e8m0fnu)


def e2m1_codes(v: torch.Tensor) -> torch.Tensor:
    """4-bit e2m1 codes (int64, sign in bit 3) of values in [-6, 6], round to nearest, ties to even code."""
    a = v.abs()
    # midpoints between magnitudes 0,.5,1,1.5,2,3,4,6; `<=` at a tie keeps the even code, `<` moves up to it
    mag = torch.full_like(a, 7, dtype=torch.int64)
    for code, bound, tie_down in ((6, 5.0, True), (5, 3.5, False), (4, 2.5, True), (3, 1.75, False),
                                  (2, 1.25, True), (1, 0.75, False), (0, 0.25, True)):
        mag = torch.where(a <= bound if tie_down else a < bound, code, mag)
    return mag | (torch.signbit(v).to(torch.int64) << 3)


def _unpack_codes(packed: torch.Tensor) -> torch.Tensor:
    """[out, in/2] bytes → [out, in] e2m1 codes, low nibble first."""
    if packed.dtype not in (torch.int8, torch.uint8, torch.float4_e2m1fn_x2) or packed.ndim != 2:
        raise QuantFormatError(f"FP4 weight must be 2-D int8/uint8 bytes, got {packed.dtype} {tuple(packed.shape)}")
    u8 = packed.contiguous().view(torch.uint8).to(torch.int64)
    return torch.stack([u8 & 0xF, u8 >> 4], dim=-1).flatten(-2)


def _weight_key(scale_key: str) -> str:
    stem = scale_key[: -len(".weight_scale_inv")] if scale_key.endswith(".weight_scale_inv") else scale_key[:-6]
    return stem + ".weight"


def _scale_of(state: dict[str, torch.Tensor], key: str) -> torch.Tensor | None:
    if not key.endswith(".weight"):
        return None
    stem = key[: -len(".weight")]
    return state.get(stem + ".scale", state.get(stem + ".weight_scale_inv"))


def _block_exponent(amax: torch.Tensor, fp_max: float) -> torch.Tensor:
    """Scale exponent ceil(log2(amax · fp32(1/fp_max))), 0 for all-zero blocks, kept inside ue8m0's range."""
    exp = ceil_log2(amax * _f32(1 / fp_max))
    return torch.where(amax > 0, exp, torch.zeros_like(exp)).clamp(-127, 127)


def _f32(x: float) -> torch.Tensor:
    """x rounded to fp32, as the kernels hold 1/448 and 1/6."""
    return torch.tensor(x, dtype=torch.float32)
