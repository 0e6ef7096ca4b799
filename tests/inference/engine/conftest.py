"""A tie-free tiny fp32 model (index_topk above every visible row count) shared by the engine tests."""

import pytest

from inference.checkpoint.loader import load_model

# sliding + CSA(4) + HCA(16) + CSA(4) at toy width; index_topk 4096 is above every visible row count (tie-free)
TIE_FREE = {"vocab_size": 512, "hidden_size": 64, "num_hidden_layers": 4, "num_nextn_predict_layers": 1,
            "num_attention_heads": 4, "head_dim": 64, "qk_rope_head_dim": 16, "q_lora_rank": 32, "o_groups": 2,
            "o_lora_rank": 32, "sliding_window": 16, "compress_ratios": [0, 4, 16, 4, 0], "index_n_heads": 16,
            "index_head_dim": 32, "index_topk": 4096, "hc_mult": 4, "hc_sinkhorn_iters": 20, "n_routed_experts": 8,
            "num_experts_per_tok": 2, "moe_intermediate_size": 32, "num_hash_layers": 1,
            "rope_scaling": {"type": "yarn", "factor": 16, "original_max_position_embeddings": 65536,
                             "beta_fast": 32, "beta_slow": 1},
            "max_position_embeddings": 1048576, "torch_dtype": "float32", "routed_scaling_factor": 1.5,
            "n_shared_experts": 1, "bos_token_id": 0, "eos_token_id": 1}


@pytest.fixture(scope="session")
def model(checkpoint_dir):
    return load_model(checkpoint_dir(TIE_FREE))

