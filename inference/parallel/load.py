"""Loading one rank's shard without the whole model (docs/parallel.md): the model is built on the meta device,
quantized modules swapped in as the loader does, sharded, allocated on the rank's device, and only then filled;
each tensor is read from the checkpoint by its official name (routed experts of other ranks are never read) and
cut to the slice the sharding marked on it. Host memory holds one checkpoint tensor at a time."""

from __future__ import annotations

import re
from pathlib import Path

import torch

from inference.checkpoint import quant
from inference.checkpoint.loader import DTYPES, _materialize, quantization_
from inference.checkpoint.weights import CheckpointReader, _read, convert_tensor, stored_tensor
from inference.errors import CheckpointError
from inference.model.config import ModelArgs
from inference.model.model import Transformer
from inference.parallel.groups import RankContext
from inference.parallel.shard import shard_model

_EXPERT = re.compile(r"^(.*)\.experts\.(\d+)\.(.*)$")


def sources(model: Transformer) -> dict[str, tuple[str, tuple[int, int, int] | None]]:
    """Sharded state_dict name -> (the checkpoint's official name, (dim, lo, hi) slice or None)."""
    out = {}
    for name, t in model.state_dict(keep_vars=True).items():
        official = name.replace(".inner.", ".")
        m = _EXPERT.match(official)
        if m:
            e0 = model.get_submodule(m.group(1)).e0
            official = f"{m.group(1)}.experts.{int(m.group(2)) + e0}.{m.group(3)}"
        out[name] = (official, getattr(t, "shard_slice", None))
    return out


def load_shard(checkpoint: str | Path, ctx: RankContext, dtype: str = "float32", weights: str = "dequantized",
               **overrides) -> Transformer | None:
    """This rank's shard, read from an official-named checkpoint; None for HF naming (whose checkpoints may lack
    the MTP tensors, so the caller loads whole and shards)."""
    reader = CheckpointReader(checkpoint)
    if reader.naming != "official":
        return None
    args = ModelArgs.from_file(Path(checkpoint) / "config.json", **overrides)
    with torch.device("meta"):
        model = Transformer(args, DTYPES[dtype])
    quantization_(model, reader, weights)
    shard_model(model, ctx)
    plan = sources(model)
    model = _materialize(model, ctx.device)
    inter = args.moe_intermediate_size
    for name, target in model.state_dict().items():
        official, cut = plan[name]
        src = _read(reader, official, "official", inter)
        if src is None:
            raise CheckpointError(f"{official} is missing from {checkpoint}")
        tensor, scale = src
        tensor = (stored_tensor(official, tensor, target.dtype) if quant.is_quantized(target)
                  else convert_tensor(official, tensor, scale, target.dtype))
        if cut is not None:
            tensor = tensor.narrow(cut[0], cut[1], cut[2] - cut[1])
        if tuple(tensor.shape) != tuple(target.shape):
            raise CheckpointError(f"{official}: checkpoint slice {tuple(tensor.shape)} != this rank's "
                                  f"{tuple(target.shape)} (does config.json match the weights?)")
        with torch.no_grad():
            target.copy_(tensor)
    return model.eval()
