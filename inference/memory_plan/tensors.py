"""The checkpoint's tensor table computed from a config alone: every official tensor name with its shape, stored
dtype, bytes, the kind of weight it is and how tensor / expert parallelism splits it (docs/memory-plan.md).

Names and shapes mirror inference.model.model (tests check them against a model built on the meta device); stored
dtypes are the release's: FP8 e4m3 + ue8m0 128×128 scales, FP4 e2m1 + ue8m0 per-32 scales for routed experts,
norms and projections in torch_dtype, mHC / sinks / ape / router bias in fp32, tid2eid int64."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass

from inference.model.config import CSA, SLIDING, ModelArgs

KINDS = ("attention", "shared_experts", "routed_experts", "embed_head", "mtp", "other")
DTYPE_BYTES = {"bfloat16": 2, "float16": 2, "float32": 4, "int64": 8, "float8_e4m3fn": 1, "int8": 1,
               "float8_e8m0fnu": 1}
SAFETENSORS_DTYPE = {"bfloat16": "BF16", "float16": "F16", "float32": "F32", "int64": "I64",
                     "float8_e4m3fn": "F8_E4M3", "int8": "I8", "float8_e8m0fnu": "F8_E8M0"}
FP8_BLOCK, FP4_BLOCK = 128, 32


@dataclass(frozen=True)
class TensorSpec:
    """One stored tensor. split: 'tp' (divided over tensor-parallel ranks), 'ep' (over expert-parallel ranks) or
    'replicated'."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    kind: str
    split: str = "replicated"

    @property
    def nbytes(self) -> int:
        n = DTYPE_BYTES[self.dtype]
        for s in self.shape:
            n *= s
        return n


def _cdiv(a: int, b: int) -> int:
    return -(-a // b)


def _linear(name: str, out_f: int, in_f: int, fmt: str | None, dtype: str, kind: str, split: str
            ) -> Iterator[TensorSpec]:
    """A linear weight as stored: plain, block FP8 (+ .scale) or packed FP4 (+ .scale)."""
    if fmt is None:
        yield TensorSpec(f"{name}.weight", (out_f, in_f), dtype, kind, split)
    elif fmt == "fp8":
        yield TensorSpec(f"{name}.weight", (out_f, in_f), "float8_e4m3fn", kind, split)
        yield TensorSpec(f"{name}.scale", (_cdiv(out_f, FP8_BLOCK), _cdiv(in_f, FP8_BLOCK)), "float8_e8m0fnu", kind,
                         split)
    else:
        yield TensorSpec(f"{name}.weight", (out_f, in_f // 2), "int8", kind, split)
        yield TensorSpec(f"{name}.scale", (out_f, in_f // FP4_BLOCK), "float8_e8m0fnu", kind, split)


def _compressor(p: str, a: ModelArgs, head_dim: int, ratio: int, overlap: bool, dt: str, kind: str
                ) -> Iterator[TensorSpec]:
    coff = 2 if overlap else 1
    yield from _linear(f"{p}.wkv", coff * head_dim, a.hidden_size, None, dt, kind, "replicated")
    yield from _linear(f"{p}.wgate", coff * head_dim, a.hidden_size, None, dt, kind, "replicated")
    yield TensorSpec(f"{p}.ape", (ratio, coff * head_dim), "float32", kind)
    yield TensorSpec(f"{p}.norm.weight", (head_dim,), dt, kind)


def _block(p: str, layer: int, a: ModelArgs, quantized: bool, expert_fmt: str, dt: str, mtp: bool
           ) -> Iterator[TensorSpec]:
    fp8 = "fp8" if quantized else None
    fe = expert_fmt if quantized else None
    att, sh, ro = ("mtp",) * 3 if mtp else ("attention", "shared_experts", "routed_experts")
    other = "mtp" if mtp else "other"
    d, h, hd, g = a.hidden_size, a.num_attention_heads, a.head_dim, a.o_groups
    kind_l = a.attn_types[layer]
    yield TensorSpec(f"{p}.attn_norm.weight", (d,), dt, other)
    yield TensorSpec(f"{p}.ffn_norm.weight", (d,), dt, other)
    q = f"{p}.attn"
    yield from _linear(f"{q}.wq_a", a.q_lora_rank, d, fp8, dt, att, "replicated")
    yield TensorSpec(f"{q}.q_norm.weight", (a.q_lora_rank,), dt, att)
    yield from _linear(f"{q}.wq_b", h * hd, a.q_lora_rank, fp8, dt, att, "tp")
    yield from _linear(f"{q}.wkv", hd, d, fp8, dt, att, "replicated")
    yield TensorSpec(f"{q}.kv_norm.weight", (hd,), dt, att)
    yield from _linear(f"{q}.wo_a", g * a.o_lora_rank, h * hd // g, fp8, dt, att, "tp")
    yield from _linear(f"{q}.wo_b", d, g * a.o_lora_rank, fp8, dt, att, "tp")
    yield TensorSpec(f"{q}.attn_sink", (h,), "float32", att, "tp")
    if kind_l != SLIDING:
        ratio = a.compress_ratios[layer]
        yield from _compressor(f"{q}.compressor", a, hd, ratio, kind_l == CSA, dt, att)
    if kind_l == CSA:
        ix = f"{q}.indexer"
        yield from _linear(f"{ix}.wq_b", a.index_n_heads * a.index_head_dim, a.q_lora_rank, fp8, dt, att, "tp")
        yield from _linear(f"{ix}.weights_proj", a.index_n_heads, d, None, dt, att, "tp")
        yield from _compressor(f"{ix}.compressor", a, a.index_head_dim, a.compress_ratios[layer], True, dt, att)
    f, e, inter = f"{p}.ffn", a.n_routed_experts, a.moe_intermediate_size
    yield TensorSpec(f"{f}.gate.weight", (e, d), dt, ro)
    if a.is_hash_layer(layer):
        yield TensorSpec(f"{f}.gate.tid2eid", (a.vocab_size, a.num_experts_per_tok), "int64", ro)
    else:
        yield TensorSpec(f"{f}.gate.bias", (e,), "float32", ro)
    for i in range(e):
        x = f"{f}.experts.{i}"
        yield from _linear(f"{x}.w1", inter, d, fe, dt, ro, "ep")
        yield from _linear(f"{x}.w2", d, inter, fe, dt, ro, "ep")
        yield from _linear(f"{x}.w3", inter, d, fe, dt, ro, "ep")
    if a.n_shared_experts:
        si = inter * a.n_shared_experts
        yield from _linear(f"{f}.shared_experts.w1", si, d, fp8, dt, sh, "tp")
        yield from _linear(f"{f}.shared_experts.w2", d, si, fp8, dt, sh, "tp")
        yield from _linear(f"{f}.shared_experts.w3", si, d, fp8, dt, sh, "tp")
    mix = (2 + a.hc_mult) * a.hc_mult
    for site in ("attn", "ffn"):
        yield TensorSpec(f"{p}.hc_{site}_fn", (mix, a.hc_mult * d), "float32", other)
        yield TensorSpec(f"{p}.hc_{site}_base", (mix,), "float32", other)
        yield TensorSpec(f"{p}.hc_{site}_scale", (3,), "float32", other)


def tensor_table(a: ModelArgs, quantized: bool = True, expert_fmt: str = "fp4") -> list[TensorSpec]:
    """Every tensor of the checkpoint of `a`: release formats when `quantized`, else all in torch_dtype."""
    dt, d, hc = a.torch_dtype, a.hidden_size, a.hc_mult
    out = [TensorSpec("embed.weight", (a.vocab_size, d), dt, "embed_head", "tp")]
    for i in range(a.num_hidden_layers):
        out += _block(f"layers.{i}", i, a, quantized, expert_fmt, dt, mtp=False)
    out += [TensorSpec("norm.weight", (d,), dt, "other"),
            TensorSpec("head.weight", (a.vocab_size, d), dt, "embed_head", "tp"),
            TensorSpec("hc_head_fn", (hc, hc * d), "float32", "other"),
            TensorSpec("hc_head_base", (hc,), "float32", "other"),
            TensorSpec("hc_head_scale", (1,), "float32", "other")]
    for j in range(a.num_nextn_predict_layers):
        p, layer = f"mtp.{j}", a.num_hidden_layers + j
        out += _block(p, layer, a, quantized, expert_fmt, dt, mtp=True)
        out += list(_linear(f"{p}.e_proj", d, d, "fp8" if quantized else None, dt, "mtp", "replicated"))
        out += list(_linear(f"{p}.h_proj", d, d, "fp8" if quantized else None, dt, "mtp", "replicated"))
        out += [TensorSpec(f"{p}.{n}.weight", (d,), dt, "mtp") for n in ("enorm", "hnorm", "norm")]
        out += [TensorSpec(f"{p}.hc_head_fn", (hc, hc * d), "float32", "mtp"),
                TensorSpec(f"{p}.hc_head_base", (hc,), "float32", "mtp"),
                TensorSpec(f"{p}.hc_head_scale", (1,), "float32", "mtp")]
    return out


def resident_table(a: ModelArgs, weights: str = "quantized", dtype: str | None = None) -> list[TensorSpec]:
    """What the engine keeps resident: `quantized` holds FP8/FP4 tensors and their scales as released,
    `dequantized` holds every weight in the runtime dtype; plain tensors in torch_dtype move to the runtime dtype."""
    dtype = dtype or a.torch_dtype
    out = []
    for t in tensor_table(a, quantized=weights == "quantized"):
        out.append(TensorSpec(t.name, t.shape, dtype if t.dtype == a.torch_dtype else t.dtype, t.kind, t.split))
    return out


def header_bytes(table: list[TensorSpec], shards: int) -> int:
    """safetensors header bytes over `shards` files (8-byte length + JSON, padded to 8): the files hold these too,
    so a release's on-disk size is tensor bytes + headers."""
    per = _cdiv(len(table), shards)
    total, offset = 0, 0
    for s in range(shards):
        entries, offset = {}, 0
        for t in table[s * per:(s + 1) * per]:
            entries[t.name] = {"dtype": SAFETENSORS_DTYPE[t.dtype], "shape": list(t.shape),
                               "data_offsets": [offset, offset + t.nbytes]}
            offset += t.nbytes
        if entries:
            entries["__metadata__"] = {"format": "pt"}
            n = len(json.dumps(entries, separators=(",", ":")))
            total += 8 + n + (-n) % 8
    return total
