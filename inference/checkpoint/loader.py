"""The one loader of a model from a checkpoint folder (config.json + safetensors, official or HF naming).

`weights="dequantized"` folds FP8/FP4 weights into the model dtype at load; `weights="quantized"` keeps them as
released (inference.model.quant_linear, docs/quantized-weights.md). Its tokenizer is loaded by
inference.text.tokenizer.load_tokenizer, which checks V4's special ids."""

from pathlib import Path

import torch

from inference.checkpoint.modes import WEIGHT_MODES, add_weights_args, default_weights, resolve_device
from inference.checkpoint.weights import CheckpointReader, hf_name, load_weights
from inference.errors import CheckpointError, ConfigError
from inference.model.config import SLIDING, ModelArgs
from inference.model.model import Head, MoE, Transformer
from inference.model.quant_linear import QuantExperts, QuantLinear, act_fp8_hook
from inference.model.rope import precompute_freqs_cis

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
__all__ = ["DTYPES", "WEIGHT_MODES", "add_weights_args", "default_weights", "load_model", "resolve_device"]
_FP4_DTYPES, _FLOAT_SCALES = ("I8", "U8"), ("F32", "BF16", "F16")


def load_model(ckpt_dir: str | Path, dtype: torch.dtype = torch.float32, weights: str | None = None,
               device: str | torch.device = "cpu", **overrides) -> Transformer:
    """Build the model described by DIR/config.json (config keys overridden by `overrides`) and load its weights
    on `device`, quantized ones kept as released or dequantized (`weights`, default: default_weights(device))."""
    cfg = Path(ckpt_dir) / "config.json"
    if not cfg.exists():
        raise CheckpointError(f"{ckpt_dir} has no config.json")
    weights = weights or default_weights(device)
    if weights not in WEIGHT_MODES:
        raise ConfigError(f"weights must be one of {WEIGHT_MODES}, got {weights!r}")
    args = ModelArgs.from_file(cfg, **overrides)
    reader = CheckpointReader(ckpt_dir)
    meta = weights == "quantized" and reader.naming == "official"  # HF may lack mtp.*: those keep initial values
    with torch.device("meta" if meta else "cpu"):
        model = Transformer(args, dtype)
    quantization_(model, reader, weights)
    if meta:
        model = _materialize(model, device)
    load_weights(model, ckpt_dir, reader=reader)
    return head_layout_(model.to(device).eval())


def quantization_(model: Transformer, reader: CheckpointReader, weights: str) -> None:
    """Before the weights are read: swap in the quantized modules for the checkpoint's FP8/FP4 linears (weights =
    "quantized"), or, dequantized with reference numerics, hook FP8 activations onto those linears (the inputs of
    the would-be quantized GEMMs are FP8 in both modes)."""
    if weights == "quantized":
        swap_quantized_(model, quantized_formats(reader, model), act_fp8=model.args.reference_numerics)
    elif model.args.reference_numerics:
        for name in quantized_formats(reader, model):
            model.get_submodule(name).register_forward_pre_hook(act_fp8_hook)


def head_layout_(model: Transformer) -> Transformer:
    """On CPU keep a plain output head's [vocab, hidden] weight column-major (a transposed view of a contiguous
    [hidden, vocab] tensor): the few rows of a decode step then read the weight at memory speed, through
    kernels.cpu_native's GEMM (fp32; model.Head) or MKL's GEMM over contiguous vocab rows, where a row-major weight
    takes MKL's slower GEMV path (small model, 132 MB fp32 head, 2 threads, one row: 16 ms row-major, 6 ms
    column-major with MKL, 4 ms with the C GEMM; 16 rows: 26, 21 and 10 ms). Same values, other layers untouched;
    on any other device the weight is made row-major (contiguous) again. Returns the model."""
    head = model.head
    if type(head) in (torch.nn.Linear, Head) and head.weight.dim() == 2:
        w = head.weight.data
        head.weight.data = w.t().contiguous().t() if w.device.type == "cpu" else w.contiguous()
    return model


def quantized_formats(reader: CheckpointReader, model: torch.nn.Module) -> dict[str, tuple[str, bool]]:
    """Linear module name -> (fmt "fp8" | "fp4", float scales?) for every linear whose checkpoint weight has a
    scale (`.scale`, or HF's `.weight_scale_inv`)."""
    out = {}
    hf = reader.naming == "hf"
    for name, mod in model.named_modules():
        if not isinstance(mod, torch.nn.Linear):
            continue
        keys = [name] if not hf else [hf_name(name + ".weight")[: -len(".weight")]]
        if hf:
            keys.append(keys[0].removeprefix("model."))
        for stem in keys:
            scale = stem + (".weight_scale_inv" if hf else ".scale")
            if scale in reader and stem + ".weight" in reader:
                wdt, sdt = _dtype(reader, stem + ".weight"), _dtype(reader, scale)
                out[name] = ("fp4" if wdt in _FP4_DTYPES else "fp8", sdt in _FLOAT_SCALES)
                break
    return out


def _dtype(reader: CheckpointReader, name: str) -> str:
    """safetensors dtype string of a tensor (e.g. "F8_E4M3", "I8", "F8_E8M0"), read from the header only."""
    return reader._file(name).get_slice(name).get_dtype()


def swap_quantized_(model: Transformer, formats: dict[str, tuple[str, bool]], act_fp8: bool) -> None:
    """Replace the linears named in `formats` by QuantLinear, and a MoE's routed experts by one QuantExperts when
    all of them ship in one quantized format."""
    a, formats = model.args, dict(formats)
    for moe_name, moe in [(n, m) for n, m in model.named_modules() if isinstance(m, MoE)]:
        names = [f"{moe_name}.experts.{e}.{w}" for e in range(len(moe.experts)) for w in ("w1", "w2", "w3")]
        fmts = {formats.get(n) for n in names}
        if len(fmts) == 1 and None not in fmts:
            fmt, scale_float = fmts.pop()
            moe.experts = QuantExperts(len(moe.experts), a.hidden_size, a.moe_intermediate_size, a.swiglu_limit, fmt,
                                       scale_float, act_fp8)
            for n in names:
                del formats[n]
    for name, (fmt, scale_float) in formats.items():
        parent_name, _, child = name.rpartition(".")
        parent, old = model.get_submodule(parent_name), model.get_submodule(name)
        setattr(parent, child, QuantLinear(old.in_features, old.out_features, fmt, scale_float, act_fp8))


def _materialize(model: Transformer, device) -> Transformer:
    """Allocate a meta-built model on `device` (values come from the checkpoint) and recompute the RoPE tables,
    which are plain attributes rather than buffers."""
    model = model.to_empty(device=device)
    for mod in model.modules():
        rotary = getattr(mod, "rotary", None)
        if rotary is not None and isinstance(getattr(mod, "kind", None), str) and rotary.inv_freq.is_meta:
            rotary.inv_freq = precompute_freqs_cis(model.args, compressed=mod.kind != SLIDING)
    for mod in model.modules():
        for key, val in vars(mod).items():
            if isinstance(val, torch.Tensor) and val.is_meta:
                raise CheckpointError(f"{type(mod).__name__}.{key} stayed on the meta device")
    return model
