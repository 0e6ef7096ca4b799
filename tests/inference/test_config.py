"""ModelArgs parsing: real Flash/Pro configs, HF-style keys, and clear errors for configs we cannot run."""

import json
from pathlib import Path

import pytest
import torch

from inference.errors import ConfigError
from inference.model.config import CSA, HCA, SLIDING, ModelArgs
from inference.model.rope import precompute_freqs_cis
from tests.inference.configs import v4_config

FIXTURES = Path(__file__).parent / "fixtures"


def test_flash_config_parses_to_the_published_values():
    a = ModelArgs.from_file(FIXTURES / "v4_flash_config.json")
    assert (a.hidden_size, a.num_hidden_layers, a.vocab_size, a.num_attention_heads) == (4096, 43, 129280, 64)
    assert (a.head_dim, a.qk_rope_head_dim, a.q_lora_rank, a.o_groups, a.o_lora_rank) == (512, 64, 1024, 8, 1024)
    assert len(a.compress_ratios) == 44 and a.compress_ratios[-1] == 0 and a.attn_types[-1] == SLIDING
    main = a.attn_types[:43]
    assert (main.count(SLIDING), main.count(CSA), main.count(HCA)) == (2, 21, 20)
    assert a.compress_ratios[2] == 4 and a.compress_ratios[3] == 128 and a.compress_ratios[42] == 4
    assert (a.index_n_heads, a.index_head_dim, a.index_topk, a.sliding_window) == (64, 128, 512, 128)
    assert (a.rope_theta, a.compress_rope_theta, a.rope_factor, a.original_max_position_embeddings) == (
        10000, 160000, 16, 65536)
    assert (a.hc_mult, a.hc_sinkhorn_iters, a.n_routed_experts, a.num_experts_per_tok) == (4, 20, 256, 6)
    assert (a.moe_intermediate_size, a.num_hash_layers, a.routed_scaling_factor, a.swiglu_limit) == (2048, 3, 1.5, 10)
    assert a.scoring_func == "sqrtsoftplus" and a.max_position_embeddings == 1048576
    assert a.quantization_config["scale_fmt"] == "ue8m0"


def test_pro_config_parses_to_the_published_values():
    a = ModelArgs.from_file(FIXTURES / "v4_pro_config.json")
    assert (a.hidden_size, a.num_hidden_layers, a.num_attention_heads, a.q_lora_rank, a.o_groups) == (
        7168, 61, 128, 1536, 16)
    main = a.attn_types[:61]
    assert (main.count(SLIDING), main.count(CSA), main.count(HCA)) == (0, 30, 31)
    assert a.compress_ratios[:2] == (128, 128) and len(a.compress_ratios) == 62
    assert (a.index_topk, a.n_routed_experts, a.moe_intermediate_size, a.routed_scaling_factor) == (
        1024, 384, 3072, 2.5)


def test_hf_style_keys_give_the_same_args_as_official_keys():
    official = ModelArgs.from_dict(v4_config(compress_ratios=[0, 4, 16, 4, 0], num_hash_layers=1))
    hf = v4_config(layer_types=[SLIDING, CSA, HCA, CSA], mlp_layer_types=["hash_moe", "moe", "moe", "moe"],
                   compress_rates={CSA: 4, HCA: 16}, partial_rotary_factor=0.25)
    for key in ("compress_ratios", "num_hash_layers", "qk_rope_head_dim", "rope_scaling"):
        hf.pop(key)
    hf["rope_parameters"] = {"main": {"rope_type": "default", "rope_theta": 10000.0},
                             "compress": {"rope_type": "yarn", "rope_theta": 160000.0, "factor": 16,
                                          "original_max_position_embeddings": 65536, "beta_fast": 32,
                                          "beta_slow": 1}}
    assert ModelArgs.from_dict(hf) == official


def test_written_config_json_round_trips():
    a = ModelArgs.from_dict(v4_config())
    assert ModelArgs.from_dict(json.loads(json.dumps(a.to_config_json()))) == a


@pytest.mark.parametrize("ratio", [3, 6, 256, 1])
def test_ratio_that_does_not_divide_128_is_rejected(ratio):
    with pytest.raises(ConfigError, match="must divide 128"):
        ModelArgs.from_dict(v4_config(compress_ratios=[0, 4, ratio, 4, 0]))


@pytest.mark.parametrize("ratio", [2, 8, 32, 64, 128])
def test_small_ratios_that_divide_128_are_accepted(ratio):
    a = ModelArgs.from_dict(v4_config(compress_ratios=[0, 4, ratio, 4, 0]))
    assert a.compress_ratios[2] == ratio and a.attn_types[2] == (CSA if ratio == 4 else HCA)


@pytest.mark.parametrize("bad, match", [
    ({"compress_ratios": [0, 4]}, "compress_ratios has 2 entries"),
    ({"layer_types": [SLIDING, "dense"]}, "layer_types entries"),
    ({"o_groups": 3}, "o_groups"),
    ({"rope_scaling": {"type": "linear", "factor": 2}}, "not supported"),
    ({"compress_ratios": [0, 4, 16, 4, 4]}, "MTP layers must be sliding-only"),
])
def test_bad_configs_raise_config_error(bad, match):
    with pytest.raises(ConfigError, match=match):
        ModelArgs.from_dict(v4_config(**bad))


def test_unreadable_config_file_raises_config_error(tmp_path):
    (tmp_path / "c.json").write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        ModelArgs.from_file(tmp_path / "c.json")
    with pytest.raises(ConfigError, match="not found"):
        ModelArgs.from_file(tmp_path / "missing.json")


def test_yarn_keeps_high_frequencies_and_divides_low_ones_by_the_factor():
    a = ModelArgs.from_file(FIXTURES / "v4_flash_config.json")
    plain = 1.0 / (160000.0 ** (torch.arange(0, 64, 2).float() / 64))
    yarn = precompute_freqs_cis(a, compressed=True)
    assert (yarn[:16] == plain[:16]).all()  # pairs 0-15 unchanged (low = 15)
    assert ((yarn[25:] - plain[25:] / 16).abs() <= 1e-12).all()  # pairs 25-31 divided by 16 (high = 25)
    assert ((yarn[16:25] < plain[16:25]) & (yarn[16:25] > plain[16:25] / 16)).all()
    sliding = precompute_freqs_cis(a, compressed=False)
    assert ((sliding - 1.0 / (10000.0 ** (torch.arange(0, 64, 2).float() / 64))).abs() < 1e-12).all()
