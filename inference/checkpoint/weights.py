"""Checkpoint I/O: lazily loaded sharded safetensors in the official naming or in transformers' renamed naming."""

import json
import re
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from inference.checkpoint import quant
from inference.errors import CheckpointError

INDEX_FILE = "model.safetensors.index.json"

# official name -> transformers name, applied in order (mirrors transformers' conversion_mapping "deepseek_v4")
_HF_RENAMES = [
    (r"\.attn\.", ".self_attn."), (r"\.ffn\.", ".mlp."), (r"\.indexer\.compressor\.", ".compressor.indexer."),
    (r"^embed\.weight$", "embed_tokens.weight"), (r"^head\.weight$", "lm_head.weight"),
    (r"^hc_head_fn$", "hc_head.hc_fn"), (r"^hc_head_base$", "hc_head.hc_base"),
    (r"^hc_head_scale$", "hc_head.hc_scale"), (r"\.attn_norm\.", ".input_layernorm."),
    (r"\.ffn_norm\.", ".post_attention_layernorm."), (r"\.hc_attn_fn$", ".attn_hc.fn"),
    (r"\.hc_attn_base$", ".attn_hc.base"), (r"\.hc_attn_scale$", ".attn_hc.scale"), (r"\.hc_ffn_fn$", ".ffn_hc.fn"),
    (r"\.hc_ffn_base$", ".ffn_hc.base"), (r"\.hc_ffn_scale$", ".ffn_hc.scale"), (r"\.attn_sink$", ".sinks"),
    (r"\.indexer\.weights_proj\.", ".compressor.indexer.scorer.weights_proj."),
    (r"\.indexer\.wq_b\.", ".compressor.indexer.q_b_proj."), (r"\.norm\.", ".kv_norm."),
    (r"\.ape$", ".position_bias"), (r"\.wq_a\.", ".q_a_proj."), (r"\.self_attn\.wq_b\.", ".self_attn.q_b_proj."),
    (r"\.wkv\.", ".kv_proj."), (r"\.wgate\.", ".gate_proj."), (r"\.wo_a\.", ".o_a_proj."),
    (r"\.wo_b\.", ".o_b_proj."), (r"\.q_norm\.", ".q_a_norm."), (r"\.gate\.bias$", ".gate.e_score_correction_bias"),
    (r"\.shared_experts\.w1\.", ".shared_experts.gate_proj."),
    (r"\.shared_experts\.w2\.", ".shared_experts.down_proj."),
    (r"\.shared_experts\.w3\.", ".shared_experts.up_proj."),
]
_EXPERT = re.compile(r"^layers\.(\d+)\.ffn\.experts\.(\d+)\.(w[123])\.weight$")


def hf_name(official: str) -> str:
    """transformers' name for an official tensor name (routed experts excluded: see hf_expert_source)."""
    name = official
    for pat, rep in _HF_RENAMES:
        name = re.sub(pat, rep, name)
    return name if name == "lm_head.weight" else "model." + name


def hf_expert_source(official: str, inter_dim: int) -> tuple[str, int, slice] | None:
    """(merged HF tensor, expert index, row slice) for a routed-expert weight, else None."""
    m = _EXPERT.match(official)
    if m is None:
        return None
    layer, expert, w = int(m.group(1)), int(m.group(2)), m.group(3)
    if w == "w2":
        return f"model.layers.{layer}.mlp.experts.down_proj", expert, slice(None)
    rows = slice(0, inter_dim) if w == "w1" else slice(inter_dim, 2 * inter_dim)
    return f"model.layers.{layer}.mlp.experts.gate_up_proj", expert, rows


class CheckpointReader:
    """Tensor names of a checkpoint directory, each read from its shard only when asked for."""

    def __init__(self, ckpt_dir: str | Path):
        self.dir = Path(ckpt_dir)
        index = self.dir / INDEX_FILE
        if index.exists():
            try:
                self.weight_map = json.loads(index.read_text())["weight_map"]
            except (json.JSONDecodeError, KeyError) as exc:
                raise CheckpointError(f"{index} is not a safetensors index (needs a weight_map): {exc}") from exc
        elif (self.dir / "model.safetensors").exists():
            with safe_open(self.dir / "model.safetensors", "pt") as f:
                self.weight_map = {k: "model.safetensors" for k in f.keys()}
        else:
            raise CheckpointError(f"{self.dir} holds neither {INDEX_FILE} nor model.safetensors")
        self._open = {}

    def __contains__(self, name: str) -> bool:
        return name in self.weight_map

    def keys(self):
        return self.weight_map.keys()

    def _file(self, name: str):
        shard = self.weight_map[name]
        if shard not in self._open:
            path = self.dir / shard
            if not path.exists():
                raise CheckpointError(f"shard {shard} named in {INDEX_FILE} is missing from {self.dir}")
            self._open[shard] = safe_open(path, "pt")
        return self._open[shard]

    def get(self, name: str) -> torch.Tensor:
        return self._file(name).get_tensor(name)

    def get_rows(self, name: str, index: int, rows: slice) -> torch.Tensor:
        return self._file(name).get_slice(name)[index][rows]

    @property
    def naming(self) -> str:
        """'hf' if the tensors use transformers' names, else 'official'."""
        return "hf" if any(k.startswith("model.") or k == "lm_head.weight" for k in self.weight_map) else "official"


def convert_tensor(name: str, tensor: torch.Tensor, scale: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor:
    """One checkpoint tensor -> the model's tensor (dtype cast; quantized weights are dequantized here)."""
    if scale is not None:
        tensor = quant.dequantize_fp4(tensor, scale) if tensor.dtype == torch.int8 else quant.dequantize_fp8(
            tensor, scale)
    return tensor.to(dtype)


def stored_tensor(name: str, tensor: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """A checkpoint tensor for a target kept in its release format (`--weights quantized`): FP8 / packed FP4 bytes
    and ue8m0 scale bytes are taken as stored, never converted by value."""
    if dtype == torch.float8_e4m3fn and tensor.dtype == dtype:
        return tensor
    if dtype in (torch.int8, torch.uint8) and tensor.dtype in (torch.int8, torch.uint8, torch.float8_e8m0fnu):
        return tensor.view(dtype)
    raise CheckpointError(f"{name}: checkpoint dtype {tensor.dtype} cannot be kept as {dtype}")


def _scale_name(weight_name: str, naming: str) -> str:
    base = weight_name[: -len(".weight")] if weight_name.endswith(".weight") else weight_name
    return base + (".weight_scale_inv" if naming == "hf" else ".scale")


def load_weights(model: torch.nn.Module, ckpt_dir: str | Path, inter_dim: int | None = None,
                 reader: CheckpointReader | None = None) -> dict:
    """Fill every parameter/buffer of `model` (official names) from the checkpoint; returns load stats. `reader`:
    one already open on ckpt_dir (else one is opened).

    Official-named checkpoints must hold every tensor; HF-named ones may lack mtp.* (transformers drops them)."""
    reader = reader if reader is not None else CheckpointReader(ckpt_dir)
    naming = reader.naming
    inter = inter_dim if inter_dim is not None else getattr(getattr(model, "args", None), "moe_intermediate_size", 0)
    missing, skipped, loaded = [], [], 0
    targets = dict(model.state_dict())
    for name, target in targets.items():
        src = _read(reader, name, naming, inter)
        if src is None:
            if naming == "hf" and name.startswith("mtp."):
                skipped.append(name)
                continue
            missing.append(name)
            continue
        tensor, scale = src
        tensor = stored_tensor(name, tensor, target.dtype) if quant.is_quantized(target) else convert_tensor(
            name, tensor, scale, target.dtype)
        if tuple(tensor.shape) != tuple(target.shape):
            raise CheckpointError(f"{name}: checkpoint shape {tuple(tensor.shape)} != model shape "
                                  f"{tuple(target.shape)} (does config.json match the weights?)")
        with torch.no_grad():
            target.copy_(tensor)
        loaded += 1
    if missing:
        raise CheckpointError(f"{len(missing)} tensors missing from {ckpt_dir} ({naming} naming), e.g. {missing[:5]}")
    return {"naming": naming, "loaded": loaded, "skipped": skipped}


def _read(reader: CheckpointReader, name: str, naming: str, inter: int):
    if naming == "official":
        if name not in reader:
            return None
        scale = _scale_name(name, naming)
        return reader.get(name), (reader.get(scale) if scale in reader else None)
    if name.endswith(".scale"):  # a scale kept beside its quantized weight: HF calls it .weight_scale_inv
        stem = hf_name(name[: -len(".scale")] + ".weight")[: -len(".weight")] + ".weight_scale_inv"
        for key in (stem, stem.removeprefix("model.")):
            if key in reader:
                return reader.get(key), None
        return None
    expert = hf_expert_source(name, inter)
    if expert is not None:
        merged, idx, rows = expert
        if merged not in reader:
            return None
        return reader.get_rows(merged, idx, rows), None
    for key in (hf_name(name), hf_name(name).removeprefix("model.")):
        if key in reader:
            scale = _scale_name(key, naming)
            return reader.get(key), (reader.get(scale) if scale in reader else None)
    return None


def to_hf_state_dict(state: dict[str, torch.Tensor], inter_dim: int) -> dict[str, torch.Tensor]:
    """Official-named tensors -> transformers' names (experts merged into gate_up_proj/down_proj; mtp dropped)."""
    out, experts = {}, {}
    for name, t in state.items():
        if name.startswith("mtp."):
            continue
        src = hf_expert_source(name, inter_dim)
        if src is None:
            out[hf_name(name)] = t
            continue
        merged, idx, _ = src
        experts.setdefault(merged, {}).setdefault(idx, {})[name.rsplit(".", 2)[-2]] = t
    for merged, per in experts.items():
        ids = sorted(per)
        if merged.endswith("down_proj"):
            out[merged] = torch.stack([per[i]["w2"] for i in ids])
        else:
            out[merged] = torch.stack([torch.cat([per[i]["w1"], per[i]["w3"]]) for i in ids])
    return out


def save_sharded(state: dict[str, torch.Tensor], out_dir: str | Path, max_shard_bytes: int = 1 << 30) -> list[str]:
    """Write state as model-0000i-of-0000n.safetensors shards + model.safetensors.index.json; returns shard names."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    shards, cur, size = [], {}, 0
    for name, t in state.items():
        nbytes = t.numel() * t.element_size()
        if cur and size + nbytes > max_shard_bytes:
            shards.append(cur)
            cur, size = {}, 0
        cur[name] = t.contiguous()
        size += nbytes
    if cur:
        shards.append(cur)
    names, weight_map, total = [], {}, 0
    for i, shard in enumerate(shards):
        fname = f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors"
        save_file(shard, str(out / fname), metadata={"format": "pt"})
        names.append(fname)
        for k, t in shard.items():
            weight_map[k] = fname
            total += t.numel() * t.element_size()
    (out / INDEX_FILE).write_text(json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}, indent=2))
    return names
