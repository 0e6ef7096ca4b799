"""python -m inference.plan --config CONFIG.json --gpus N --gpu-mem GIB [--tp T] [--ep E] [--cache-dtype bf16|fp32]
[--max-model-len L] [--chunk TOKENS] [--weights quantized|dequantized]: the memory plan of a deployment.

Prints, per rank, the weights by kind, the prefill chunk's activation workspace and the KV pool left (as context
tokens and concurrent 1M-token sequences), then one JSON line; exits 1 with the reason when the plan does not fit.
No weights are read (docs/memory-plan.md)."""

from __future__ import annotations

import argparse
import json
import re
import sys

from inference.errors import InferenceModelError
from inference.memory_plan.sizing import GIB, MILLION_TOKENS, Plan, PlanInputs, make_plan
from inference.memory_plan.tensors import KINDS
from inference.model.config import ModelArgs

_LABELS = {"attention": "attention", "shared_experts": "shared experts", "routed_experts": "routed experts",
           "embed_head": "embedding + head", "mtp": "MTP", "other": "norms, mHC, router"}


def parse_mem(text: str) -> float:
    """'141GB' (10^9 bytes), '131.3GiB' or a bare number (GiB) -> GiB."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*(GB|GiB|G)?\s*", text, re.IGNORECASE)
    if not m or float(m.group(1)) <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a memory size such as 80, 141GB or 139.8GiB")
    value, unit = float(m.group(1)), (m.group(2) or "GiB").lower()
    return value * 1e9 / GIB if unit == "gb" else value


def format_plan(p: Plan) -> str:
    rows = [(f"weights: {_LABELS[k]}", p.weights_by_kind[k]) for k in KINDS]
    rows += [("weights total", p.weights), (f"prefill workspace ({p.inputs.chunk} tokens)", p.workspace),
             ("reserve", p.reserve), ("KV pool left", p.kv_pool)]
    lines = [f"model: {p.weights_total / GIB:.2f} GiB of weights in {p.tensors:,} tensors ({p.inputs.weights}); "
             f"{p.inputs.gpus} rank(s), TP {p.tp}, EP {p.ep}, {p.gpu_mem / GIB:.2f} GiB each", "",
             f"{'per rank':<36}{'GiB':>10}"]
    lines += [f"  {label:<34}{value / GIB:>10.3f}" for label, value in rows]
    lines += ["", f"KV cache ({p.history_bytes_per_token:.0f} B/token, the full cache on every rank): "
              f"{p.context_tokens:,} context tokens = {p.sequences_1m} concurrent {MILLION_TOKENS:,}-token sequences"]
    lines += [f"note: {n}" for n in p.notes]
    return "\n".join(lines)


def measure(ckpt: str, dtype: str) -> dict:
    """Load CKPT both ways on the CPU and count the bytes of every parameter and buffer, beside the plan's."""
    import torch

    from inference.checkpoint.loader import DTYPES, load_model
    from inference.memory_plan.tensors import resident_table
    from inference.model.quant_linear import resident_bytes

    args = ModelArgs.from_file(f"{ckpt}/config.json")
    out = {"checkpoint": ckpt, "dtype": dtype}
    for mode in ("quantized", "dequantized"):
        model = load_model(ckpt, DTYPES[dtype], weights=mode)
        planned = sum(t.nbytes for t in resident_table(args, mode if args.quantization_config else "dequantized",
                                                       dtype))
        out[mode] = {"resident_bytes": resident_bytes(model), "planned_bytes": planned}
        print(f"{mode:>12}: {out[mode]['resident_bytes'] / GIB:8.3f} GiB resident, plan {planned / GIB:8.3f} GiB")
        del model
        torch.cuda.empty_cache() if torch.cuda.is_available() else None
    out["dequantized_over_quantized"] = out["dequantized"]["resident_bytes"] / out["quantized"]["resident_bytes"]
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", help="a V4 config.json")
    ap.add_argument("--gpus", type=int, default=1, help="ranks (one GPU each)")
    ap.add_argument("--gpu-mem", type=parse_mem, help="memory per GPU: GiB, or e.g. 141GB")
    ap.add_argument("--tp", type=int, default=None, help="tensor-parallel ranks over heads (default: --gpus)")
    ap.add_argument("--ep", type=int, default=None, help="expert-parallel ranks over routed experts (default: --gpus)")
    ap.add_argument("--cache-dtype", choices=("bf16", "fp32"), default="bf16", help="the KV cache's element type")
    ap.add_argument("--max-model-len", type=int, default=None, help="default: the config's max_position_embeddings")
    ap.add_argument("--chunk", type=int, default=8192, help="prefill tokens per step")
    ap.add_argument("--max-num-seqs", type=int, default=16, help="running sequences (window slots)")
    ap.add_argument("--weights", choices=("quantized", "dequantized"), default="quantized",
                    help="FP8/FP4 weights kept as released, or folded into --dtype at load")
    ap.add_argument("--reserve-gib", type=float, default=1.0, help="CUDA context and allocator slack per rank")
    ap.add_argument("--measure", metavar="CKPT", help="instead: load CKPT quantized and dequantized (--dtype) and "
                    "report the resident weight bytes of each beside the plan's")
    ap.add_argument("--dtype", choices=("float32", "bfloat16"), default="bfloat16", help="with --measure")
    ns = ap.parse_args(argv)
    if ns.measure:
        print(json.dumps(measure(ns.measure, ns.dtype)))
        return 0
    if not ns.config or ns.gpu_mem is None:
        ap.error("--config and --gpu-mem are required (or --measure CKPT)")
    try:
        args = ModelArgs.from_file(ns.config)
        plan = make_plan(args, PlanInputs(gpus=ns.gpus, gpu_mem_gib=ns.gpu_mem, tp=ns.tp, ep=ns.ep,
                                          cache_dtype=ns.cache_dtype, max_model_len=ns.max_model_len, chunk=ns.chunk,
                                          max_num_seqs=ns.max_num_seqs, weights=ns.weights,
                                          reserve_gib=ns.reserve_gib))
    except (InferenceModelError, OSError, ValueError) as exc:
        ap.error(str(exc))
    print(format_plan(plan))
    print(json.dumps(plan.report()))
    problem = plan.problem()
    if problem:
        print(f"inference.plan: {problem}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
