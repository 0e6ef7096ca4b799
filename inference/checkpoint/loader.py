"""The one loader of a model from a checkpoint folder (config.json + safetensors, official or HF naming).

Its tokenizer is loaded by inference.text.tokenizer.load_tokenizer, which checks V4's special ids."""

from pathlib import Path

import torch

from inference.checkpoint.weights import load_weights
from inference.errors import CheckpointError
from inference.model.config import ModelArgs
from inference.model.model import Transformer

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def load_model(ckpt_dir: str | Path, dtype: torch.dtype = torch.float32, **overrides) -> Transformer:
    """Build the model described by DIR/config.json (config keys overridden by `overrides`) and load its weights."""
    cfg = Path(ckpt_dir) / "config.json"
    if not cfg.exists():
        raise CheckpointError(f"{ckpt_dir} has no config.json")
    model = Transformer(ModelArgs.from_file(cfg, **overrides), dtype)
    load_weights(model, ckpt_dir)
    return model.eval()
