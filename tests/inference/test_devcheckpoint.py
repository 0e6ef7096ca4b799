"""devcheckpoint writes the official release layout; presets have the documented shapes; random weights are sane."""

import hashlib
import json
import subprocess
import sys

import pytest
import torch

from inference.checkpoint.loader import load_model
from inference.checkpoint.presets import PRESETS, preset_args
from inference.checkpoint.weights import CheckpointReader
from inference.model.config import CSA, HCA, SLIDING
from inference.model.model import Transformer, count_parameters
from inference.model.runner import ModelRunner

TOKENIZER_SHA256 = "8f9f37ca37fdc4f5fd36d5cf4d3b0e8392edb4e894fd10cc0d70b4957c8633cf"


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("tiny")
    subprocess.run([sys.executable, "-m", "inference.devcheckpoint", "--out", str(out), "--preset", "tiny",
                    "--seed", "1", "--shard-mb", "8"], check=True, capture_output=True)
    return out


def test_tiny_checkpoint_has_the_official_layout(tiny_dir):
    names = sorted(p.name for p in tiny_dir.iterdir())
    assert "config.json" in names and "model.safetensors.index.json" in names
    shards = [n for n in names if n.endswith(".safetensors")]
    assert len(shards) >= 2  # --shard-mb 8 splits the 36 MB of weights
    assert hashlib.sha256((tiny_dir / "tokenizer.json").read_bytes()).hexdigest() == TOKENIZER_SHA256
    assert json.loads((tiny_dir / "tokenizer_config.json").read_text())
    reader = CheckpointReader(tiny_dir)
    assert reader.naming == "official"
    assert "embed.weight" in reader and "head.weight" in reader and "mtp.0.e_proj.weight" in reader
    assert not any(k.startswith("model.") for k in reader.keys())
    tid2eid = reader.get("layers.0.ffn.gate.tid2eid")
    assert tid2eid.shape == (129280, 2) and tid2eid.dtype == torch.int64
    assert (tid2eid[:, 0] != tid2eid[:, 1]).all() and int(tid2eid.max()) < 8
    cfg = json.loads((tiny_dir / "config.json").read_text())
    assert cfg["vocab_size"] == 129280 and cfg["max_position_embeddings"] == 1048576
    assert set(cfg["layer_types"]) == {SLIDING, CSA, HCA}
    assert all(128 % r == 0 for r in cfg["compress_ratios"] if r)


@pytest.mark.slow
def test_random_weights_give_varied_greedy_tokens_with_margins(tiny_dir):
    model = load_model(tiny_dir)
    ids = torch.randint(2, 129280, (1, 40), generator=torch.Generator().manual_seed(0))
    logits = ModelRunner(model)(ids)
    assert torch.isfinite(logits).all()
    top2 = logits[0].topk(2, dim=-1).values
    margins = top2[:, 0] - top2[:, 1]
    assert margins.median().item() > 0.05
    assert 2.0 < logits.std().item() < 10.0
    assert len(set(logits[0].argmax(-1).tolist())) > 20


def test_same_seed_same_weights_other_seed_differs(tmp_path):
    from inference.checkpoint.dev import write_checkpoint
    from tests.inference.configs import v4_config

    a = write_checkpoint(tmp_path / "a", v4_config(), seed=4)
    b = write_checkpoint(tmp_path / "b", v4_config(), seed=4)
    c = write_checkpoint(tmp_path / "c", v4_config(), seed=5)
    ra, rb, rc = CheckpointReader(a), CheckpointReader(b), CheckpointReader(c)
    assert torch.equal(ra.get("layers.1.attn.wq_b.weight"), rb.get("layers.1.attn.wq_b.weight"))
    assert not torch.equal(ra.get("layers.1.attn.wq_b.weight"), rc.get("layers.1.attn.wq_b.weight"))
    assert not (tmp_path / "a" / "tokenizer.json").exists()  # vocab 512 does not match the real tokenizer


def test_small_preset_is_the_documented_benchmark_model():
    a = preset_args("small")
    assert (a.hidden_size, a.num_hidden_layers, a.num_attention_heads, a.head_dim, a.qk_rope_head_dim) == (
        256, 4, 8, 128, 32)
    assert a.attn_types[:4] == (SLIDING, CSA, HCA, CSA) and a.compress_ratios[:4] == (0, 4, 128, 4)
    assert (a.index_n_heads, a.index_head_dim, a.index_topk, a.sliding_window) == (8, 64, 512, 128)
    with torch.device("meta"):
        model = Transformer(a, torch.bfloat16)
    assert abs(count_parameters(model) - 75.7e6) < 0.05e6


def test_flash_shape_preset_has_flash_attention_shapes():
    a = preset_args("flash-shape")
    assert a.attn_types == (CSA, HCA)
    assert (a.hidden_size, a.num_attention_heads, a.head_dim, a.index_n_heads, a.index_head_dim, a.index_topk) == (
        4096, 64, 512, 64, 128, 512)
    assert all(PRESETS[name]["vocab_size"] == 129280 for name in PRESETS)


def test_bad_config_is_a_clear_cli_error(tmp_path):
    bad = tmp_path / "c.json"
    bad.write_text(json.dumps({"num_hidden_layers": 2, "compress_ratios": [0, 6]}))
    proc = subprocess.run([sys.executable, "-m", "inference.devcheckpoint", "--out", str(tmp_path / "o"),
                           "--config", str(bad)], capture_output=True, text=True)
    assert proc.returncode == 2 and "must divide 128" in proc.stderr
