"""Per-rank memory plan: weights by kind, the prefill chunk's activation workspace, and the KV pool left
(docs/memory-plan.md). Pure arithmetic on a config; `inference.plan` prints it and `inference.serve` sizes its pools
from it."""

from __future__ import annotations

from dataclasses import dataclass, field

from inference.engine.layout import CacheLayout
from inference.errors import ConfigError
from inference.memory_plan.tensors import DTYPE_BYTES, KINDS, TensorSpec, resident_table
from inference.model.config import ModelArgs

GIB = 1 << 30
MILLION_TOKENS = 1 << 20  # a "1M" sequence: the 1,048,576-token window
CACHE_DTYPES = {"bf16": "bfloat16", "fp32": "float32", "bfloat16": "bfloat16", "float32": "float32"}
CHECKPOINT_SLOTS_PER_SEQ = 4  # EngineConfig.num_checkpoints default: 4 window checkpoints per running sequence


class PlanDoesNotFit(ConfigError):
    """A plan whose weights, workspace and one full-length sequence's cache exceed a rank's memory."""


@dataclass(frozen=True)
class PlanInputs:
    gpus: int = 1
    gpu_mem_gib: float = 80.0
    tp: int | None = None  # default: gpus
    ep: int | None = None  # default: gpus
    cache_dtype: str = "bf16"
    max_model_len: int | None = None  # default: the config's max_position_embeddings
    chunk: int = 8192  # prefill tokens per engine step (max_num_batched_tokens)
    max_num_seqs: int = 16
    weights: str = "quantized"
    act_dtype: str = "bfloat16"  # activations / dequantized weights at run time
    reserve_gib: float = 1.0  # CUDA context, allocator slack, communication buffers

    def __post_init__(self):
        if self.gpus < 1:
            raise ConfigError(f"--gpus must be at least 1, got {self.gpus}")
        for name, v in (("tp", self.tp), ("ep", self.ep)):
            if v is not None and (v < 1 or self.gpus % v):
                raise ConfigError(f"--{name} {v} must divide --gpus {self.gpus}")
        if self.cache_dtype not in CACHE_DTYPES:
            raise ConfigError(f"--cache-dtype must be one of bf16, fp32; got {self.cache_dtype!r}")
        if self.weights not in ("quantized", "dequantized"):
            raise ConfigError(f"--weights must be quantized or dequantized, got {self.weights!r}")
        if self.gpu_mem_gib <= 0 or self.chunk < 1 or self.max_num_seqs < 1:
            raise ConfigError("--gpu-mem, --chunk and --max-num-seqs must be positive")


@dataclass(frozen=True)
class Plan:
    """Bytes per rank; `fits` says whether one max_model_len sequence's cache fits beside weights and workspace."""

    inputs: PlanInputs
    tp: int
    ep: int
    max_model_len: int
    weights_by_kind: dict[str, int]
    weights_total: int  # the whole model (all ranks), as resident
    tensors: int
    workspace: int
    reserve: int
    gpu_mem: int
    fixed_cache: int  # window slots of the running sequences and their checkpoints, open compressor state
    history_bytes_per_token: float
    notes: list[str] = field(default_factory=list)

    @property
    def weights(self) -> int:
        return sum(self.weights_by_kind.values())

    @property
    def kv_pool(self) -> int:
        """Bytes left for the cache pools (history blocks + window slots) on each rank."""
        return self.gpu_mem - self.weights - self.workspace - self.reserve

    @property
    def context_tokens(self) -> int:
        """History tokens the pool holds after the fixed window / open-state costs (all sequences together)."""
        return max(0, int((self.kv_pool - self.fixed_cache) // self.history_bytes_per_token))

    @property
    def sequences_1m(self) -> int:
        """Concurrent full 1M-token sequences the pool holds."""
        return self.context_tokens // MILLION_TOKENS

    @property
    def fits(self) -> bool:
        return self.context_tokens >= self.max_model_len

    def problem(self) -> str | None:
        """Why the plan does not fit, in words a person can act on; None when it fits."""
        if self.fits:
            return None
        need = self.weights + self.workspace + self.reserve + self.fixed_cache + \
            self.max_model_len * self.history_bytes_per_token
        return (f"does not fit: each of {self.inputs.gpus} rank(s) needs {need / GIB:.2f} GiB (weights "
                f"{self.weights / GIB:.2f} + workspace {self.workspace / GIB:.2f} + reserve {self.reserve / GIB:.2f} "
                f"+ cache for one {self.max_model_len}-token sequence "
                f"{(self.fixed_cache + self.max_model_len * self.history_bytes_per_token) / GIB:.2f}) but has "
                f"{self.gpu_mem / GIB:.2f} GiB; add GPUs (--gpus/--ep), lower --max-model-len or --chunk")

    def report(self) -> dict:
        return {"gpus": self.inputs.gpus, "tp": self.tp, "ep": self.ep, "gpu_mem_gib": self.gpu_mem / GIB,
                "weights_mode": self.inputs.weights, "cache_dtype": CACHE_DTYPES[self.inputs.cache_dtype],
                "max_model_len": self.max_model_len, "chunk": self.inputs.chunk,
                "model_weights_gib": self.weights_total / GIB, "model_tensors": self.tensors,
                "per_rank_gib": {**{k: v / GIB for k, v in self.weights_by_kind.items()},
                                 "weights": self.weights / GIB, "workspace": self.workspace / GIB,
                                 "reserve": self.reserve / GIB, "kv_pool": self.kv_pool / GIB},
                "history_bytes_per_token": self.history_bytes_per_token, "context_tokens": self.context_tokens,
                "sequences_1m": self.sequences_1m, "fits": self.fits}


def rank_bytes(t: TensorSpec, tp: int, ep: int, n_experts: int) -> int:
    """One rank's share of a tensor: TP-split tensors divide their first dim (rounded up), routed experts go
    whole to one EP rank (the busiest rank holds ceil(E / ep) of them), the rest is replicated."""
    if t.split == "tp" and tp > 1:
        rows = -(-t.shape[0] // tp)
        return t.nbytes // t.shape[0] * rows
    if t.split == "ep" and ep > 1:
        return t.nbytes * (-(-n_experts // ep)) // n_experts
    return t.nbytes


def workspace_bytes(a: ModelArgs, chunk: int, tp: int, act_dtype: str, max_num_seqs: int) -> int:
    """Peak activation bytes of one prefill chunk on one rank (an estimate from the layer's largest live tensors):
    the residual streams in and out plus the larger of attention (q, its output, the gathered rows bound
    `attn_chunk_elems`, wo_a's output) and the MoE (each routed copy of a token, fp32 gate/up, expert outputs)."""
    e, f = DTYPE_BYTES[act_dtype], 4
    c, d, hc = chunk, a.hidden_size, a.hc_mult
    residual = 2 * c * hc * d * e + c * hc * d * f  # streams in/out + the fp32 mix input
    heads = -(-a.num_attention_heads // tp)
    attn = 3 * c * heads * a.head_dim * e + a.attn_chunk_elems * f + c * a.o_groups * a.o_lora_rank * e // tp
    k, inter = a.num_experts_per_tok, a.moe_intermediate_size
    moe = c * k * (d * e + 2 * inter * f + inter * e + d * f) + c * d * f
    logits = max_num_seqs * a.vocab_size * f
    return residual + max(attn, moe) + logits


def make_plan(a: ModelArgs, p: PlanInputs) -> Plan:
    """The plan of model `a` under inputs `p` (no weights are read)."""
    tp, ep = p.tp or p.gpus, p.ep or p.gpus
    quantized = p.weights == "quantized" and bool(a.quantization_config)
    table = resident_table(a, "quantized" if quantized else "dequantized", p.act_dtype)
    by_kind = dict.fromkeys(KINDS, 0)
    for t in table:
        by_kind[t.kind] += rank_bytes(t, tp, ep, a.n_routed_experts)
    layout = CacheLayout(a, CACHE_DTYPES[p.cache_dtype])
    slots = p.max_num_seqs * (1 + CHECKPOINT_SLOTS_PER_SEQ)
    fixed = slots * layout.window_block_bytes + p.max_num_seqs * layout.open_state_bytes
    notes = []
    if p.weights == "quantized" and not a.quantization_config:
        notes.append("the config has no quantization_config: weights are held as stored (unquantized)")
    if tp > 1:
        notes.append(f"TP={tp} splits heads; V4's one shared latent KV per layer is replicated, so every rank holds "
                     f"the full cache")
    return Plan(p, tp, ep, p.max_model_len or a.max_position_embeddings, by_kind, sum(t.nbytes for t in table),
                len(table), workspace_bytes(a, p.chunk, tp, p.act_dtype, p.max_num_seqs), int(p.reserve_gib * GIB),
                int(p.gpu_mem_gib * GIB), fixed, layout.bytes_per_token, notes)


def device_memory_bytes(device: str) -> int:
    """Total memory of a CUDA device, or the host memory available now for `cpu`."""
    import torch

    if device.startswith("cuda"):
        return torch.cuda.get_device_properties(torch.device(device)).total_memory
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    import os

    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


CPU_DEFAULT_CACHE = 2 * GIB  # on a CPU host the pools default to 2 GiB (or less, if the plan leaves less)


def serve_cache_bytes(a: ModelArgs, *, device: str, weights: str, dtype: str, max_num_seqs: int, chunk: int,
                      max_model_len: int | None, cache_gib: float | None, tp: int = 1, ep: int = 1
                      ) -> tuple[int, Plan]:
    """The cache-pool budget `inference.serve` starts with, from the plan of this model on this device:
    an explicit --cache-gib wins but must fit in what the plan leaves; otherwise CUDA takes the whole KV pool the
    plan leaves and a CPU host min(2 GiB, that pool). Raises PlanDoesNotFit with the plan's numbers. With --tp/--ep
    the plan is one rank's of max(tp, ep) (docs/parallel.md)."""
    mem = device_memory_bytes(device)
    plan = make_plan(a, PlanInputs(gpus=max(tp, ep), tp=tp, ep=ep, gpu_mem_gib=mem / GIB, cache_dtype=dtype,
                                   max_model_len=max_model_len,
                                   chunk=chunk, max_num_seqs=max_num_seqs, weights=weights, act_dtype=dtype,
                                   reserve_gib=1.0 if device.startswith("cuda") else 0.25))
    where = (f"{device} has {mem / GIB:.2f} GiB; weights take {plan.weights / GIB:.2f}, the {chunk}-token prefill "
             f"workspace {plan.workspace / GIB:.2f}, reserve {plan.reserve / GIB:.2f}")
    if plan.kv_pool <= 0:
        raise PlanDoesNotFit(f"the model does not fit: {where}, leaving nothing for the cache "
                             f"(python -m inference.plan shows the plan)")
    if cache_gib is not None:
        want = int(cache_gib * GIB)
        if want > plan.kv_pool:
            raise PlanDoesNotFit(f"--cache-gib {cache_gib:g} is more than the {plan.kv_pool / GIB:.2f} GiB the memory "
                                 f"plan leaves for the cache: {where}")
        return want, plan
    return (plan.kv_pool if device.startswith("cuda") else min(CPU_DEFAULT_CACHE, plan.kv_pool)), plan
