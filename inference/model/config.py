"""ModelArgs: the DeepSeek-V4 model config, parsed from an official or a Hugging Face style config.json."""

import json
import math
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from inference.errors import ConfigError
from kernels.constants import BLOCK_TOKENS  # re-exported: every compression ratio divides it (docs/cache-layout.md)

SLIDING, CSA, HCA = "sliding_attention", "compressed_sparse_attention", "heavily_compressed_attention"
HF_DEFAULT_RATES = {CSA: 4, HCA: 128}


@dataclass(frozen=True)
class ModelArgs:
    """Field names follow the official config.json keys; per-layer lists include the MTP layers at the end."""

    vocab_size: int = 129280
    hidden_size: int = 4096
    num_hidden_layers: int = 43
    num_nextn_predict_layers: int = 1
    # attention (one shared K=V latent head)
    num_attention_heads: int = 64
    head_dim: int = 512
    qk_rope_head_dim: int = 64
    q_lora_rank: int = 1024
    o_groups: int = 8
    o_lora_rank: int = 1024
    sliding_window: int = 128  # includes the current token
    compress_ratios: tuple[int, ...] = ()  # one per layer + MTP: 0 sliding, else the ratio
    attn_types: tuple[str, ...] = ()  # SLIDING / CSA / HCA, same length as compress_ratios
    # lightning indexer (CSA layers)
    index_n_heads: int = 64
    index_head_dim: int = 128
    index_topk: int = 512
    # rope: plain on sliding layers, YaRN on compressed layers
    rope_theta: float = 10000.0
    compress_rope_theta: float = 160000.0
    rope_factor: float = 16.0
    original_max_position_embeddings: int = 65536
    beta_fast: float = 32.0
    beta_slow: float = 1.0
    yarn: bool = True
    max_position_embeddings: int = 1048576
    # mHC
    hc_mult: int = 4
    hc_sinkhorn_iters: int = 20
    hc_eps: float = 1e-6
    # moe
    n_routed_experts: int = 256
    n_shared_experts: int = 1
    num_experts_per_tok: int = 6
    moe_intermediate_size: int = 2048
    num_hash_layers: int = 3
    scoring_func: str = "sqrtsoftplus"
    routed_scaling_factor: float = 1.5
    norm_topk_prob: bool = True
    swiglu_limit: float = 10.0
    rms_norm_eps: float = 1e-6
    bos_token_id: int = 0
    eos_token_id: int = 1
    torch_dtype: str = "bfloat16"
    quantization_config: dict | None = field(default=None, compare=False, hash=False)
    # runtime switches (not config.json keys)
    reference_numerics: bool = False  # FP8/FP4 fake-quant + Hadamard of DeepSeek's reference (inference.model.numerics)
    attn_chunk_elems: int = 1 << 24  # bound on gathered [queries, keys, head_dim] elements per attention chunk

    @property
    def n_layers(self) -> int:
        return self.num_hidden_layers

    @property
    def nope_head_dim(self) -> int:
        return self.head_dim - self.qk_rope_head_dim

    def is_hash_layer(self, layer_id: int) -> bool:
        return layer_id < self.num_hash_layers and layer_id < self.num_hidden_layers

    def with_(self, **changes) -> "ModelArgs":
        """A copy with some fields changed (validated again)."""
        return replace(self, **changes)

    def __post_init__(self):
        _validate(self)

    @classmethod
    def from_file(cls, path: str | Path, **overrides) -> "ModelArgs":
        try:
            raw = json.loads(Path(path).read_text())
        except FileNotFoundError as exc:
            raise ConfigError(f"config file not found: {path}") from exc
        except json.JSONDecodeError as exc:
            raise ConfigError(f"config file {path} is not valid JSON: {exc}") from exc
        return cls.from_dict(raw, **overrides)

    @classmethod
    def from_dict(cls, raw: dict, **overrides) -> "ModelArgs":
        """Parse official keys (compress_ratios, num_hash_layers, rope_scaling, …) or HF keys (layer_types, …)."""
        if not isinstance(raw, dict):
            raise ConfigError("a model config must be a JSON object")
        known = {f for f in cls.__dataclass_fields__}
        kw = {k: raw[k] for k in known if k in raw and k not in ("compress_ratios", "attn_types")}
        n = int(raw.get("num_hidden_layers", cls.num_hidden_layers))
        n_mtp = int(raw.get("num_nextn_predict_layers", cls.num_nextn_predict_layers))
        kw["compress_ratios"], kw["attn_types"] = _layer_schedule(raw, n, n_mtp)
        if "mlp_layer_types" in raw and "num_hash_layers" not in raw:
            types = list(raw["mlp_layer_types"])
            n_hash = sum(1 for t in types if t == "hash_moe")
            if types[:n_hash] != ["hash_moe"] * n_hash:
                raise ConfigError("hash_moe layers must come first in mlp_layer_types")
            kw["num_hash_layers"] = n_hash
        if "qk_rope_head_dim" not in raw and raw.get("partial_rotary_factor"):
            kw["qk_rope_head_dim"] = int(kw.get("head_dim", cls.head_dim) * raw["partial_rotary_factor"])
        kw.update(_rope_fields(raw))
        if "eos_token_id" in raw and isinstance(raw["eos_token_id"], list):
            kw["eos_token_id"] = raw["eos_token_id"][0]
        for key in ("bos_token_id", "eos_token_id"):
            if kw.get(key) is None:
                kw.pop(key, None)
        if "dtype" in raw and "torch_dtype" not in raw:
            kw["torch_dtype"] = raw["dtype"]
        # reference numerics (inference.model.numerics) default on exactly for release (quantized) checkpoints
        kw.setdefault("reference_numerics", bool(raw.get("quantization_config")))
        kw.update(overrides)
        try:
            return cls(**kw)
        except TypeError as exc:
            raise ConfigError(f"bad config value: {exc}") from exc

    def to_config_json(self) -> dict:
        """Official keys plus the HF-style keys that transformers needs for small compression ratios."""
        d = asdict(self)
        for key in ("attn_types", "reference_numerics", "attn_chunk_elems", "rope_factor", "beta_fast", "beta_slow",
                    "original_max_position_embeddings", "yarn"):
            d.pop(key)
        if d["quantization_config"] is None:
            d.pop("quantization_config")
        n = self.num_hidden_layers
        d["compress_ratios"] = list(self.compress_ratios)
        d["layer_types"] = list(self.attn_types[:n])
        d["mlp_layer_types"] = ["hash_moe"] * min(n, self.num_hash_layers) + ["moe"] * max(0, n - self.num_hash_layers)
        rates = dict(HF_DEFAULT_RATES)
        for t, r in zip(self.attn_types, self.compress_ratios):
            if t != SLIDING:
                rates[t] = r
        d["compress_rates"] = rates
        if self.yarn:
            d["rope_scaling"] = {"type": "yarn", "factor": self.rope_factor, "beta_fast": self.beta_fast,
                                 "beta_slow": self.beta_slow,
                                 "original_max_position_embeddings": self.original_max_position_embeddings}
        d["architectures"] = ["DeepseekV4ForCausalLM"]
        d["model_type"] = "deepseek_v4"
        d["num_key_value_heads"] = 1
        d["tie_word_embeddings"] = False
        return d


def _layer_schedule(raw: dict, n: int, n_mtp: int) -> tuple[tuple[int, ...], tuple[str, ...]]:
    """Per-layer (ratio, type) incl. MTP layers, from compress_ratios or HF layer_types + compress_rates."""
    rates = dict(HF_DEFAULT_RATES)
    rates.update(raw.get("compress_rates") or {})
    for key, t in (("compress_rate_csa", CSA), ("compress_rate_hca", HCA)):
        if key in raw:
            rates[t] = raw[key]
    if raw.get("layer_types") is not None:
        types = list(raw["layer_types"])
        bad = [t for t in types if t not in (SLIDING, CSA, HCA)]
        if bad:
            raise ConfigError(f"layer_types entries must be {SLIDING}, {CSA} or {HCA}; got {bad}")
        if len(types) != n:
            raise ConfigError(f"num_hidden_layers ({n}) must equal len(layer_types) ({len(types)})")
        ratios = [0 if t == SLIDING else int(rates[t]) for t in types]
    elif raw.get("compress_ratios") is not None:
        ratios = [int(r) for r in raw["compress_ratios"]]
        if len(ratios) not in (n, n + n_mtp):
            raise ConfigError(f"compress_ratios has {len(ratios)} entries; expected {n} or {n + n_mtp} "
                              f"(num_hidden_layers + num_nextn_predict_layers)")
        ratios = ratios[:n]
        csa_rate = int(rates[CSA])
        types = [SLIDING if r == 0 else CSA if r == csa_rate else HCA for r in ratios]
    else:  # transformers' default schedule (matches neither released model)
        types = [HCA] * min(n, 2) + [CSA if i % 2 else HCA for i in range(max(n - 2, 0))]
        ratios = [int(rates[t]) for t in types]
    mtp_ratios = [0] * n_mtp
    if raw.get("compress_ratios") is not None and len(raw["compress_ratios"]) == n + n_mtp:
        mtp_ratios = [int(r) for r in raw["compress_ratios"][n:]]
    for r in mtp_ratios:
        if r != 0:
            raise ConfigError(f"MTP layers must be sliding-only (ratio 0), got {r}")
    return tuple(ratios + mtp_ratios), tuple(types + [SLIDING] * n_mtp)


def _rope_fields(raw: dict) -> dict:
    scaling = raw.get("rope_scaling")
    params = raw.get("rope_parameters")
    if isinstance(params, dict) and isinstance(params.get("compress"), dict):
        scaling = params["compress"] if params["compress"].get("rope_type", "default") == "yarn" else None
        out = {"rope_theta": params.get("main", {}).get("rope_theta", raw.get("rope_theta", 10000.0)),
               "compress_rope_theta": params["compress"].get("rope_theta", raw.get("compress_rope_theta", 160000.0))}
    elif isinstance(params, dict) and params.get("rope_type", params.get("type")) == "yarn" and scaling is None:
        scaling, out = params, {}
    else:
        out = {}
    if scaling is None:
        return {**out, "yarn": False}
    kind = scaling.get("type", scaling.get("rope_type", "yarn"))
    if kind != "yarn":
        raise ConfigError(f"rope_scaling type {kind!r} is not supported (DeepSeek-V4 uses yarn)")
    return {**out, "yarn": True, "rope_factor": float(scaling.get("factor", 16.0)),
            "original_max_position_embeddings": int(scaling.get("original_max_position_embeddings", 65536)),
            "beta_fast": float(scaling.get("beta_fast", 32.0)), "beta_slow": float(scaling.get("beta_slow", 1.0))}


def _validate(a: ModelArgs) -> None:
    n_all = a.num_hidden_layers + a.num_nextn_predict_layers
    if len(a.compress_ratios) != n_all or len(a.attn_types) != n_all:
        raise ConfigError(f"compress_ratios/attn_types need {n_all} entries (layers + MTP), "
                          f"got {len(a.compress_ratios)}/{len(a.attn_types)}")
    for i, (r, t) in enumerate(zip(a.compress_ratios, a.attn_types)):
        if (r == 0) != (t == SLIDING):
            raise ConfigError(f"layer {i}: ratio {r} does not match attention type {t}")
        if r and (r < 2 or BLOCK_TOKENS % r):
            raise ConfigError(f"layer {i}: compression ratio {r} must divide {BLOCK_TOKENS} "
                              f"(history blocks hold {BLOCK_TOKENS} positions; use e.g. 4, 8, 16, 32, 64 or 128)")
    if a.num_attention_heads % a.o_groups:
        raise ConfigError(f"o_groups ({a.o_groups}) must divide num_attention_heads ({a.num_attention_heads})")
    for name, rope, dim in (("head_dim", a.qk_rope_head_dim, a.head_dim),
                            ("index_head_dim", a.qk_rope_head_dim, a.index_head_dim)):
        if rope % 2 or rope > dim:
            raise ConfigError(f"qk_rope_head_dim ({rope}) must be even and at most {name} ({dim})")
    if a.num_experts_per_tok > a.n_routed_experts:
        raise ConfigError(f"num_experts_per_tok ({a.num_experts_per_tok}) exceeds n_routed_experts")
    if a.scoring_func not in ("sqrtsoftplus", "sigmoid", "softmax"):
        raise ConfigError(f"scoring_func {a.scoring_func!r} is not one of sqrtsoftplus, sigmoid, softmax")
    if a.sliding_window < 1 or a.hc_mult < 1 or a.hc_sinkhorn_iters < 1 or a.index_topk < 1:
        raise ConfigError("sliding_window, hc_mult, hc_sinkhorn_iters and index_topk must be positive")
    if a.yarn and a.rope_factor <= 0:
        raise ConfigError("rope_scaling.factor must be positive")
    if not math.isfinite(a.rope_theta) or not math.isfinite(a.compress_rope_theta):
        raise ConfigError("rope thetas must be finite")
