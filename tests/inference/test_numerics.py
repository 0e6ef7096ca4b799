"""Reference numerics: each quantizer against values worked out by hand (docs/model.md#reference-numerics)."""

import argparse

import pytest
import torch

from inference.model.numerics import (
    act_quant_kv,
    add_reference_numerics_arg,
    fp4_act_quant,
    reference_numerics_default,
    resolve_reference_numerics,
    rotate_activation,
)

##### act_quant_kv: FP8 e4m3, block 64, s = 2^ceil(log2(amax/448)) #####


def test_kv_fp8_by_hand():
    kv = torch.zeros(2, 192)
    kv[0, 0], kv[0, 1] = 300.0, 1.3  # block 0: amax 300 → s = 1; e4m3 step in [256,512) is 32, in [1,2) 1/8
    kv[0, 64], kv[0, 65] = 0.01, -0.0037  # block 1: amax .01 → s = 2^-15; .01/s = 327.68 → 320, -121.24 → -120
    kv[0, 128:] = 1.3  # rope dims: untouched
    out = act_quant_kv(kv, rope_dim=64)
    assert out[0, 0] == 288.0 and out[0, 1] == 1.25
    assert out[0, 64] == 320 * 2.0**-15 and out[0, 65] == -120 * 2.0**-15
    assert torch.equal(out[0, 128:], kv[0, 128:])
    assert torch.count_nonzero(out[0, :128]) == 4 and torch.count_nonzero(out[1]) == 0
    assert torch.equal(kv[0, :2], torch.tensor([300.0, 1.3]))  # the input is not modified


def test_kv_scale_is_a_power_of_two_rounded_up():
    """amax 60 → s = 2^ceil(log2(60/448)) = 1/4: 60 stays exact and 0.1/s = 0.4 rounds to 13/32 in e4m3.

    A plain amax/448 scale would give 0.1004; a rounded-down 1/8 would clamp 480 to 448 (56.0).
    """
    kv = torch.zeros(1, 64 + 32)
    kv[0, 0], kv[0, 1] = 60.0, 0.1
    out = act_quant_kv(kv, rope_dim=32)
    assert out[0, :2].tolist() == [60.0, 0.1015625]


def test_kv_partial_last_block_has_its_own_scale():
    """Tiny configs (head 128, rope 32) leave 96 nope dims: blocks 0-63 and 64-95."""
    kv = torch.zeros(1, 128)
    kv[0, 0], kv[0, 70] = 448.0, 0.001
    out = act_quant_kv(kv, rope_dim=32)
    # own block: .001 → s = 2^-18, .001/s = 262.1 → 256 → 2^-10 (sharing block 0's s = 1 would give 2^-9)
    assert out[0, 0] == 448.0 and out[0, 70] == 2.0**-10


def test_kv_keeps_dtype_and_handles_batch_dims():
    kv = torch.zeros(2, 3, 5, 128, dtype=torch.bfloat16)
    kv[1, 2, 4, 3] = 1.3
    out = act_quant_kv(kv, rope_dim=64)
    assert out.dtype == torch.bfloat16 and out.shape == kv.shape
    assert out[1, 2, 4, 3].item() == 1.25 and torch.count_nonzero(out) == 1


def test_kv_rope_dim_out_of_range():
    with pytest.raises(ValueError, match="rope_dim"):
        act_quant_kv(torch.zeros(1, 64), rope_dim=65)


##### fp4_act_quant: e2m1, block 32, s = 2^ceil(log2(amax/6)), ties to even #####


def test_fp4_by_hand():
    x = torch.zeros(96)
    x[:9] = torch.tensor([6.0, 0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5.0, -0.75])  # s = 1: ties go to the even code
    x[32], x[33] = 0.3, 0.1  # amax .3 → s = 2^ceil(log2(.05)) = 1/16: 4.8 → 4, 1.6 → 1.5
    out = fp4_act_quant(x)
    assert out[:9].tolist() == [6.0, 0.0, 1.0, 1.0, 2.0, 2.0, 4.0, 4.0, -1.0]
    assert out[32:34].tolist() == [0.25, 0.09375]
    assert torch.count_nonzero(out[64:]) == 0 and torch.count_nonzero(out) == 10


def test_fp4_keeps_dtype_and_rejects_partial_blocks():
    x = torch.full((4, 64), 0.7, dtype=torch.bfloat16)
    out = fp4_act_quant(x)
    # amax .7 → s = 2^ceil(log2(.1167)) = 1/8; .7·8 = 5.6 → 6 → 0.75
    assert out.dtype == torch.bfloat16 and torch.all(out == 0.75)
    with pytest.raises(ValueError, match="multiple of the FP4 block"):
        fp4_act_quant(torch.zeros(40))


##### rotate_activation: normalized Walsh–Hadamard #####


def test_hadamard_4_by_hand():
    # H4 rows (Sylvester): ++++, +-+-, ++--, +--+, times 1/2
    assert rotate_activation(torch.tensor([1.0, 2.0, 3.0, 4.0])).tolist() == [5.0, -1.0, -2.0, 0.0]


def test_hadamard_matches_sylvester_matrix():
    h = torch.tensor([[1.0]])
    while h.size(0) < 16:
        h = torch.cat([torch.cat([h, h], 1), torch.cat([h, -h], 1)], 0)
    x = torch.randn(3, 16, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(rotate_activation(x), x @ h.T / 4.0)


def test_hadamard_is_orthonormal_and_keeps_dtype():
    x = torch.randn(5, 128, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(rotate_activation(rotate_activation(x)), x, atol=1e-5, rtol=1e-5)
    e0 = torch.zeros(8)
    e0[0] = 1.0
    torch.testing.assert_close(rotate_activation(e0), torch.full((8,), 8**-0.5))
    assert rotate_activation(x.bfloat16()).dtype == torch.bfloat16
    with pytest.raises(ValueError, match="power-of-two"):
        rotate_activation(torch.zeros(96))


##### The switch #####


def test_switch_defaults_to_presence_of_quantization_config():
    release = {"hidden_size": 4096, "quantization_config": {"quant_method": "fp8", "scale_fmt": "ue8m0"}}
    assert reference_numerics_default(release) is True
    assert reference_numerics_default({"hidden_size": 64}) is False
    assert resolve_reference_numerics(release) is True
    assert resolve_reference_numerics(release, "off") is False
    assert resolve_reference_numerics({"hidden_size": 64}, "on") is True
    assert resolve_reference_numerics({}, True) is True
    with pytest.raises(ValueError, match="'on' or 'off'"):
        resolve_reference_numerics({}, "yes")


def test_cli_option():
    parser = argparse.ArgumentParser()
    add_reference_numerics_arg(parser)
    assert parser.parse_args([]).reference_numerics is None
    assert parser.parse_args(["--reference-numerics", "off"]).reference_numerics == "off"
    with pytest.raises(SystemExit):
        parser.parse_args(["--reference-numerics", "maybe"])
