"""Checkpoint loading: official and transformers naming load to the same model; broken checkpoints fail clearly."""

import json

import pytest
import torch

from inference.checkpoint.loader import load_model
from inference.checkpoint.weights import CheckpointReader, hf_name, load_weights, save_sharded, to_hf_state_dict
from inference.errors import CheckpointError
from inference.model.config import ModelArgs
from inference.model.model import Transformer
from inference.model.runner import ModelRunner
from tests.inference.configs import v4_config


def _official_state(ckpt):
    reader = CheckpointReader(ckpt)
    return {k: reader.get(k) for k in reader.keys()}


@pytest.mark.slow
def test_official_and_hf_named_checkpoints_load_to_the_same_model(checkpoint_dir, tmp_path):
    config = v4_config()
    ckpt = checkpoint_dir(config)
    state = _official_state(ckpt)
    hf_dir = tmp_path / "hf"
    save_sharded(to_hf_state_dict(state, config["moe_intermediate_size"]), hf_dir, max_shard_bytes=200_000)
    (hf_dir / "config.json").write_text((ckpt / "config.json").read_text())
    assert len(json.loads((hf_dir / "model.safetensors.index.json").read_text())["weight_map"]) > 10
    assert CheckpointReader(hf_dir).naming == "hf" and CheckpointReader(ckpt).naming == "official"

    official = load_model(ckpt)
    hf = load_model(hf_dir)
    ours, theirs = official.state_dict(), hf.state_dict()
    for name, t in ours.items():
        if name.startswith("mtp."):
            continue  # transformers' naming drops the MTP block
        assert torch.equal(t, theirs[name]), name
    ids = torch.randint(0, 512, (1, 30), generator=torch.Generator().manual_seed(0))
    assert torch.equal(ModelRunner(official)(ids), ModelRunner(hf)(ids))


def test_hf_names_follow_the_transformers_conversion_mapping():
    assert hf_name("layers.3.attn.indexer.compressor.wkv.weight") == (
        "model.layers.3.self_attn.compressor.indexer.kv_proj.weight")
    assert hf_name("layers.3.attn.indexer.weights_proj.weight") == (
        "model.layers.3.self_attn.compressor.indexer.scorer.weights_proj.weight")
    assert hf_name("layers.1.attn.compressor.norm.weight") == "model.layers.1.self_attn.compressor.kv_norm.weight"
    assert hf_name("layers.1.attn.compressor.ape") == "model.layers.1.self_attn.compressor.position_bias"
    assert hf_name("layers.0.hc_attn_fn") == "model.layers.0.attn_hc.fn"
    assert hf_name("layers.4.ffn.gate.bias") == "model.layers.4.mlp.gate.e_score_correction_bias"
    assert hf_name("head.weight") == "lm_head.weight" and hf_name("hc_head_scale") == "model.hc_head.hc_scale"


def test_every_official_tensor_is_found_by_transformers(checkpoint_dir):
    import transformers  # the pinned reference: a missing one fails, never skips

    ckpt = checkpoint_dir(v4_config())
    _, info = transformers.DeepseekV4ForCausalLM.from_pretrained(str(ckpt), output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]


def test_missing_tensor_is_a_checkpoint_error(checkpoint_dir, tmp_path):
    state = _official_state(checkpoint_dir(v4_config()))
    del state["layers.1.attn.indexer.wq_b.weight"]
    save_sharded(state, tmp_path)
    model = Transformer(ModelArgs.from_dict(v4_config()), torch.float32)
    with pytest.raises(CheckpointError, match="missing"):
        load_weights(model, tmp_path)


def test_wrong_shape_is_a_checkpoint_error(checkpoint_dir):
    model = Transformer(ModelArgs.from_dict(v4_config(q_lora_rank=48)), torch.float32)
    with pytest.raises(CheckpointError, match="shape"):
        load_weights(model, checkpoint_dir(v4_config()))


def test_missing_shard_and_empty_directory_are_checkpoint_errors(checkpoint_dir, tmp_path):
    with pytest.raises(CheckpointError, match="neither"):
        CheckpointReader(tmp_path)
    src = checkpoint_dir(v4_config())
    index = json.loads((src / "model.safetensors.index.json").read_text())
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps(index))
    model = Transformer(ModelArgs.from_dict(v4_config()), torch.float32)
    with pytest.raises(CheckpointError, match="missing"):
        load_weights(model, tmp_path)
    with pytest.raises(CheckpointError, match="config.json"):
        load_model(tmp_path)
