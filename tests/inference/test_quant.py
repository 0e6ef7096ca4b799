"""Release weight formats: hand-packed bytes with hand-computed values, and transformers' own dequantization."""

from types import SimpleNamespace

import pytest
import torch
from transformers.integrations.finegrained_fp8 import Fp8Dequantize, Fp8Quantize

from inference.checkpoint.quant import (
    QuantFormatError,
    dequantize_fp4,
    dequantize_fp8,
    dequantize_state_dict,
    e2m1_codes,
    quantize_fp4,
    quantize_fp8_block,
    quantize_state_dict,
    release_format,
)


def e8m0(*exponents):
    """Scale bytes written by hand: byte = exponent + 127."""
    return torch.tensor([e + 127 for e in exponents], dtype=torch.uint8).view(torch.float8_e8m0fnu)


def fp8_bytes(rows):
    return torch.tensor(rows, dtype=torch.uint8).view(torch.float8_e4m3fn)


##### Hand-packed bytes #####


def test_fp8_hand_bytes_with_partial_blocks():
    # e4m3: 0x3C = 0|0111|100 = 1.5, 0xC0 = 1|1000|000 = -2.0, 0x00 = 0, 0x01 = smallest subnormal 2^-9
    w = torch.zeros(130, 129, dtype=torch.uint8)
    w[0, 0], w[129, 0], w[0, 128], w[129, 128], w[5, 7] = 0x3C, 0xC0, 0xC0, 0x3C, 0x01
    scale = e8m0(-1, 2, 3, 0).view(2, 2)  # [[0.5, 4], [8, 1]]: rows 0-127 / 128-129, cols 0-127 / 128
    out = dequantize_fp8(w.view(torch.float8_e4m3fn), scale)
    assert out.dtype == torch.float32 and out.shape == (130, 129)
    assert out[0, 0] == 0.75 and out[129, 0] == -16.0 and out[0, 128] == -8.0 and out[129, 128] == 1.5
    assert out[5, 7] == 2.0**-10
    assert torch.count_nonzero(out) == 5


def test_fp8_raw_uint8_scales_equal_e8m0_scales():
    w = fp8_bytes([[0x3C, 0x40]])  # 1.5, 2.0
    assert dequantize_fp8(w, torch.tensor([[130]], dtype=torch.uint8)).tolist() == [[12.0, 16.0]]
    assert dequantize_fp8(w, e8m0(3).view(1, 1), dtype=torch.bfloat16).dtype == torch.bfloat16


def test_fp4_hand_bytes_low_nibble_first():
    # 0x71: low nibble 1 (0.5) is column 0, high nibble 7 (6.0) is column 1; 0xA9: 9 (-0.5), 10 (-1.0)
    row = [0x71, 0xA9] + [0x00] * 14 + [0x2F] + [0x00] * 15  # 0x2F: 15 (-6.0), 2 (1.0)
    packed = torch.tensor([row], dtype=torch.uint8).view(torch.int8)  # [1, 32] -> 64 values
    out = dequantize_fp4(packed, e8m0(1, -2).view(1, 2))  # cols 0-31 x2, cols 32-63 x0.25
    assert out.shape == (1, 64)
    assert out[0, :4].tolist() == [1.0, 12.0, -1.0, -2.0]
    assert out[0, 32:34].tolist() == [-1.5, 0.25]
    assert torch.count_nonzero(out) == 6


def test_fp8_scale_is_smallest_power_of_two_covering_amax():
    """Scale = 2^ceil(log2(amax/448)): amax 448 → 1, 449 → 2, 224 → 1/2, 300 → 1, 0 → 1."""
    w = torch.zeros(128, 640)
    for j, amax in enumerate([448.0, 449.0, 224.0, 300.0]):
        w[3, 128 * j] = amax
    q, s = quantize_fp8_block(w)
    assert s.view(torch.uint8).tolist() == [[127, 128, 126, 127, 127]]
    assert q.float()[3, [0, 128, 256, 384]].tolist() == [448.0, 224.0, 448.0, 288.0]  # 300 rounds to 288 in e4m3


def test_fp4_round_to_nearest_even_at_ties():
    # the block max 6 makes the scale 1; ties go to the even code: .25→0, .75→1, 1.25→1, 1.75→2, 2.5→2, 3.5→4, 5→4
    ties = [0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5.0, -5.0, -0.75, 6.0]
    w = torch.tensor([ties + [0.0] * 22])
    packed, scale = quantize_fp4(w)
    assert scale.view(torch.uint8).tolist() == [[127]]
    assert packed.view(torch.uint8)[0, :5].tolist() == [0x20, 0x42, 0x64, 0xE6, 0x7A]
    assert dequantize_fp4(packed, scale)[0, :10].tolist() == [0.0, 1.0, 1.0, 2.0, 2.0, 4.0, 4.0, -4.0, -1.0, 6.0]


def test_fp4_scale_per_32_columns():
    w = torch.zeros(2, 64)
    w[0, 0], w[0, 40], w[1, 63] = 6.0, 7.0, 0.1  # 6/6 → 2^0; 7/6 → 2^1; 0.1/6 → 2^-5 (0.1/6 = 0.0167 ≤ 1/32)
    _, scale = quantize_fp4(w)
    assert scale.view(torch.uint8).tolist() == [[127, 128], [127, 122]]


##### transformers' own code on the same bytes #####


def test_fp8_dequant_matches_transformers():
    g = torch.Generator().manual_seed(0)
    raw = torch.randint(0, 256, (256, 384), dtype=torch.uint8, generator=g)
    raw[(raw & 0x7F) == 0x7F] = 0x11  # 0x7F/0xFF are NaN in e4m3fn
    scale = torch.randint(117, 137, (2, 3), dtype=torch.uint8, generator=g).view(torch.float8_e8m0fnu)
    ours = dequantize_fp8(raw.view(torch.float8_e4m3fn), scale)
    theirs = Fp8Dequantize(None)._dequantize_one(raw.view(torch.float8_e4m3fn), scale, output_dtype=torch.float32)
    assert torch.equal(ours, theirs)


def test_fp4_dequant_matches_transformers():
    g = torch.Generator().manual_seed(1)
    packed = torch.randint(-128, 128, (48, 64), dtype=torch.int8, generator=g)
    scale = torch.randint(120, 135, (48, 4), dtype=torch.uint8, generator=g).view(torch.float8_e8m0fnu)
    ours = dequantize_fp4(packed, scale)
    theirs = Fp8Dequantize(None)._dequantize_one(packed, scale, output_dtype=torch.float32)
    assert torch.equal(ours, theirs)


def test_fp8_quantize_matches_transformers_ue8m0_writer():
    w = torch.randn(256, 384, generator=torch.Generator().manual_seed(2)) * 0.05
    config = SimpleNamespace(weight_block_size=(128, 128), scale_fmt="ue8m0")
    theirs = Fp8Quantize(SimpleNamespace(quantization_config=config))._quantize_one("x.weight", w)
    q, s = quantize_fp8_block(w)
    assert torch.equal(s.view(torch.uint8), theirs["x.weight_scale_inv"].view(torch.uint8))
    assert torch.equal(q.view(torch.uint8), theirs["x.weight"].view(torch.uint8))


##### State dicts #####


@pytest.mark.parametrize(
    ("key", "fmt"),
    [
        ("layers.0.attn.wq_a.weight", "fp8"),
        ("layers.3.attn.wq_b.weight", "fp8"),
        ("layers.3.attn.wkv.weight", "fp8"),
        ("layers.3.attn.wo_a.weight", "fp8"),
        ("layers.3.attn.wo_b.weight", "fp8"),
        ("layers.2.attn.indexer.wq_b.weight", "fp8"),
        ("layers.1.ffn.shared_experts.w2.weight", "fp8"),
        ("mtp.0.e_proj.weight", "fp8"),
        ("mtp.0.attn.wkv.weight", "fp8"),
        ("layers.4.ffn.experts.17.w1.weight", "fp4"),
        ("mtp.0.ffn.experts.0.w2.weight", "fp4"),
        ("layers.2.attn.compressor.wkv.weight", None),
        ("layers.2.attn.indexer.compressor.wgate.weight", None),
        ("layers.2.attn.indexer.weights_proj.weight", None),
        ("layers.2.attn.kv_norm.weight", None),
        ("layers.2.ffn.gate.weight", None),
        ("embed.weight", None),
        ("head.weight", None),
        ("layers.2.attn.attn_sink", None),
    ],
)
def test_release_format_table(key, fmt):
    assert release_format(key) == fmt


def test_experts_ship_fp8_when_expert_dtype_is_not_fp4():
    assert release_format("layers.4.ffn.experts.1.w3.weight", expert_dtype=None) == "fp8"


def test_state_dict_round_trip_on_grid_values():
    """Values already on the FP8/FP4 grids (times power-of-two scales) must come back bit for bit."""
    g = torch.Generator().manual_seed(3)
    fp4_grid = torch.tensor([0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0])
    expert = fp4_grid[torch.randint(0, 8, (16, 64), generator=g)] * 0.25
    expert[:, ::32] = 1.5  # every block's amax is 1.5, so its scale is 2^ceil(log2(1.5/6)) = 1/4
    shared = torch.randn(40, 64, generator=g).to(torch.float8_e4m3fn).float() * 2.0**-8
    shared[0, 0] = 448 * 2.0**-8
    norm = torch.rand(64, generator=g)
    state = {"layers.0.ffn.experts.0.w1.weight": expert, "layers.0.ffn.shared_experts.w1.weight": shared,
             "layers.0.attn_norm.weight": norm}
    packed = quantize_state_dict(state)
    assert packed["layers.0.ffn.experts.0.w1.weight"].dtype == torch.int8
    assert packed["layers.0.ffn.experts.0.w1.scale"].shape == (16, 2)
    assert packed["layers.0.ffn.shared_experts.w1.weight"].dtype == torch.float8_e4m3fn
    assert packed["layers.0.ffn.shared_experts.w1.scale"].view(torch.uint8).tolist() == [[127 - 8]]
    back = dequantize_state_dict(packed)
    assert set(back) == set(state)
    for key in state:
        assert torch.equal(back[key], state[key]), key


def test_hf_scale_name_is_accepted():
    state = {"q_a_proj.weight": fp8_bytes([[0x3C]]), "q_a_proj.weight_scale_inv": e8m0(1).view(1, 1)}
    assert dequantize_state_dict(state) == {"q_a_proj.weight": torch.tensor([[3.0]])}


@pytest.mark.parametrize(
    ("call", "needle"),
    [
        (lambda: dequantize_fp8(fp8_bytes([[0x3C]]), e8m0(0, 0).view(1, 2)), "scale grid"),
        (lambda: dequantize_fp8(torch.ones(2, 2), e8m0(0).view(1, 1)), "float8_e4m3fn"),
        (lambda: dequantize_fp4(torch.zeros(1, 16, dtype=torch.int8), e8m0(0, 0).view(1, 2)), "needs scales"),
        (lambda: dequantize_fp4(torch.zeros(1, 16), e8m0(0).view(1, 1)), "int8"),
        (lambda: quantize_fp4(torch.zeros(2, 40)), "divisible by 32"),
        (lambda: dequantize_state_dict({"a.weight": fp8_bytes([[0x3C]])}), "no .scale"),
        (lambda: dequantize_state_dict({"a.scale": e8m0(0).view(1, 1)}), "has no weight"),
    ],
)
def test_bad_inputs_raise_typed_error(call, needle):
    with pytest.raises(QuantFormatError, match=needle):
        call()


def test_e2m1_rounding_matches_brute_force_nearest_even():
    """Every magnitude on a fine sweep goes to the nearest grid value; exact ties go to the even code."""
    grid = [0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0]
    sweep = [i / 64 for i in range(0, 6 * 64 + 1)]
    expected = []
    for v in sweep:
        dist = [abs(v - g) for g in grid]
        best = min(dist)
        codes = [c for c, d in enumerate(dist) if d == best]
        expected.append(next((c for c in codes if c % 2 == 0), codes[0]))
    assert e2m1_codes(torch.tensor(sweep)).tolist() == expected
    assert e2m1_codes(-torch.tensor(sweep)).tolist() == [c | 8 for c in expected]


def test_format_errors_are_checkpoint_errors():
    """Callers that report bad checkpoints (generate, serve) catch CheckpointError; a bad scale must be one."""
    from inference.errors import CheckpointError

    with pytest.raises(CheckpointError):
        dequantize_fp8(fp8_bytes([[0x3C]]), e8m0(0, 0).view(1, 2))


def test_agrees_with_the_kernels_layer_dequant():
    """The GPU path (kernels.dequant) must read the same release bytes the CPU loader reads, odd shapes included."""
    from kernels.dequant import naive_fp4_dequant, naive_fp8_dequant

    g = torch.Generator().manual_seed(4)
    raw = torch.randint(0, 256, (200, 130), dtype=torch.uint8, generator=g)
    raw[(raw & 0x7F) == 0x7F] = 0x22
    scale = torch.randint(115, 140, (2, 2), dtype=torch.uint8, generator=g).view(torch.float8_e8m0fnu)
    w = raw.view(torch.float8_e4m3fn)
    assert torch.equal(dequantize_fp8(w, scale), naive_fp8_dequant(w, scale, torch.float32))
    packed = torch.randint(-128, 128, (24, 48), dtype=torch.int8, generator=g)
    scale4 = torch.randint(118, 136, (24, 3), dtype=torch.uint8, generator=g).view(torch.float8_e8m0fnu)
    assert torch.equal(dequantize_fp4(packed, scale4), naive_fp4_dequant(packed, scale4, torch.float32))
