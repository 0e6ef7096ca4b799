"""`devcheckpoint --quantized` writes the release formats; the loader folds them back; the model runs on them."""

import json

import pytest
import torch

from inference.checkpoint.dev import write_checkpoint
from inference.checkpoint.loader import load_model
from inference.checkpoint.quant import dequantize_state_dict, release_format
from inference.checkpoint.weights import CheckpointReader
from inference.devcheckpoint import main as devcheckpoint_main
from inference.model.decode import generate
from inference.model.runner import ModelRunner
from tests.inference.configs import v4_config

CONFIG = v4_config()  # fp32 tiny config: sliding + CSA + HCA, 8 experts, MTP


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory):
    """The same random model (seed 3) written plain and in release formats."""
    plain = write_checkpoint(tmp_path_factory.mktemp("plain"), CONFIG, seed=3)
    packed = write_checkpoint(tmp_path_factory.mktemp("quant"), CONFIG, seed=3, quantized=True)
    return plain, packed


def _tensors(ckpt):
    reader = CheckpointReader(ckpt)
    return {k: reader.get(k) for k in reader.keys()}


def test_release_layout_and_config(ckpts):
    _, packed = ckpts
    cfg = json.loads((packed / "config.json").read_text())
    assert cfg["quantization_config"]["scale_fmt"] == "ue8m0"
    assert cfg["quantization_config"]["weight_block_size"] == [128, 128]
    assert cfg["expert_dtype"] == "fp4"
    t = _tensors(packed)
    assert t["layers.1.attn.wq_b.weight"].dtype == torch.float8_e4m3fn
    assert t["layers.1.attn.wq_b.weight"].shape == (256, 32)
    assert t["layers.1.attn.wq_b.scale"].dtype == torch.float8_e8m0fnu
    assert t["layers.1.attn.wq_b.scale"].shape == (2, 1)  # ceil(256/128), ceil(32/128)
    assert t["layers.1.ffn.experts.5.w2.weight"].dtype == torch.int8
    assert t["layers.1.ffn.experts.5.w2.weight"].shape == (64, 16)  # logical [64, 32], two codes per byte
    assert t["layers.1.ffn.experts.5.w2.scale"].shape == (64, 1)
    assert t["mtp.0.e_proj.scale"].shape == (1, 1)
    assert t["layers.1.attn.compressor.wkv.weight"].dtype == torch.float32  # ships unquantized
    assert "layers.1.attn.compressor.wkv.scale" not in t
    scales = [k for k in t if k.endswith(".scale")]
    assert len(scales) == sum(release_format(k) is not None for k in t)


def test_loads_to_the_dequantized_values(ckpts):
    _, packed = ckpts
    expected = dequantize_state_dict(_tensors(packed))
    got = load_model(packed).state_dict()
    assert set(got) == set(expected)
    for name, tensor in got.items():
        assert torch.equal(tensor, expected[name].to(tensor.dtype)), name


def test_quantized_weights_stay_close_to_the_originals(ckpts):
    plain, packed = ckpts
    orig, deq = load_model(plain).state_dict(), load_model(packed).state_dict()
    worst = {"fp8": 0.0, "fp4": 0.0}
    for name, w in orig.items():
        fmt = release_format(name)
        if fmt is None:
            assert torch.equal(deq[name], w), name
            continue
        rel = ((deq[name] - w).norm() / w.norm()).item()
        worst[fmt] = max(worst[fmt], rel)
    # e4m3 keeps 3 mantissa bits (≤ 1/16 relative per value); e2m1 keeps 1 (RMS error about a tenth)
    assert 0 < worst["fp8"] < 0.05 and 0 < worst["fp4"] < 0.2


@pytest.mark.slow
def test_model_runs_with_reference_numerics_on_by_default(ckpts):
    plain, packed = ckpts
    assert load_model(plain).args.reference_numerics is False
    model = load_model(packed)
    assert model.args.reference_numerics is True  # config.json has a quantization_config
    ids = torch.randint(2, 512, (1, 40), generator=torch.Generator().manual_seed(0))
    on = ModelRunner(model)(ids)
    off = ModelRunner(load_model(packed, reference_numerics=False))(ids)
    assert torch.isfinite(on).all() and on.shape == (1, 40, 512)
    assert (on - off).abs().max().item() > 1e-4  # the fake-quants are really applied
    new, logits = generate(model, ids[0].tolist(), max_new_tokens=4)
    assert len(new) == 4 and logits.shape == (4, 512)


def test_cli_flag(tmp_path):
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps(CONFIG))
    assert devcheckpoint_main(["--out", str(tmp_path / "q"), "--config", str(cfg), "--quantized"]) == 0
    reader = CheckpointReader(tmp_path / "q")
    assert reader.get("layers.0.attn.wkv.weight").dtype == torch.float8_e4m3fn
    assert "layers.0.attn.wkv.scale" in reader
