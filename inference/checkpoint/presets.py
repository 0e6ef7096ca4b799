"""Named development configs (official config.json keys) for random-weight checkpoints."""

from inference.errors import ConfigError
from inference.model.config import ModelArgs

_YARN = {"type": "yarn", "factor": 16, "original_max_position_embeddings": 65536, "beta_fast": 32, "beta_slow": 1}
_COMMON = {"vocab_size": 129280, "bos_token_id": 0, "eos_token_id": 1, "max_position_embeddings": 1048576,
           "rope_theta": 10000.0, "compress_rope_theta": 160000.0, "rope_scaling": _YARN,
           "scoring_func": "sqrtsoftplus", "routed_scaling_factor": 1.5, "norm_topk_prob": True,
           "swiglu_limit": 10.0, "rms_norm_eps": 1e-6,
           "hc_eps": 1e-6, "n_shared_experts": 1, "torch_dtype": "bfloat16"}

PRESETS: dict[str, dict] = {
    # sliding, CSA (ratio 4) and HCA (ratio 16) at toy width: parity and engine tests
    "tiny": {**_COMMON, "hidden_size": 64, "num_hidden_layers": 4, "num_nextn_predict_layers": 1,
             "num_attention_heads": 4, "head_dim": 64, "qk_rope_head_dim": 16, "q_lora_rank": 32, "o_groups": 2,
             "o_lora_rank": 32, "sliding_window": 16, "compress_ratios": [0, 4, 16, 4, 0],
             "compress_rates": {"compressed_sparse_attention": 4, "heavily_compressed_attention": 16},
             "index_n_heads": 16, "index_head_dim": 32, "index_topk": 8, "hc_mult": 4, "hc_sinkhorn_iters": 20,
             "n_routed_experts": 8, "num_experts_per_tok": 2, "moe_intermediate_size": 32, "num_hash_layers": 1},
    # the benchmark model (≈75.7M parameters without MTP)
    "small": {**_COMMON, "hidden_size": 256, "num_hidden_layers": 4, "num_nextn_predict_layers": 1,
              "num_attention_heads": 8, "head_dim": 128, "qk_rope_head_dim": 32, "q_lora_rank": 128, "o_groups": 2,
              "o_lora_rank": 128, "sliding_window": 128, "compress_ratios": [0, 4, 128, 4, 0],
              "index_n_heads": 8, "index_head_dim": 64, "index_topk": 512, "hc_mult": 4, "hc_sinkhorn_iters": 20,
              "n_routed_experts": 8, "num_experts_per_tok": 2, "moe_intermediate_size": 256, "num_hash_layers": 1},
    # V4-Flash attention and indexer shapes, two layers, 8 experts
    "flash-shape": {**_COMMON, "hidden_size": 4096, "num_hidden_layers": 2, "num_nextn_predict_layers": 0,
                    "num_attention_heads": 64, "head_dim": 512, "qk_rope_head_dim": 64, "q_lora_rank": 1024,
                    "o_groups": 8, "o_lora_rank": 1024, "sliding_window": 128, "compress_ratios": [4, 128],
                    "index_n_heads": 64, "index_head_dim": 128, "index_topk": 512, "hc_mult": 4,
                    "hc_sinkhorn_iters": 20, "n_routed_experts": 8, "num_experts_per_tok": 6,
                    "moe_intermediate_size": 2048, "num_hash_layers": 1},
}


def preset_config(name: str) -> dict:
    """The config.json dict of a preset."""
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
    return dict(PRESETS[name])


def preset_args(name: str, **overrides) -> ModelArgs:
    return ModelArgs.from_dict(preset_config(name), **overrides)
