"""wholedoc kernels: Triton kernels for DeepSeek-V4 attention with their plain-torch twins (`naive_*`).

Each family exports `foo` (dispatch: CUDA → Triton, CPU → vectorized torch), `foo_triton`, `foo_torch`, `naive_foo`.
Every dispatcher asks `dispatch.use_triton(x)`; `dispatch.force_triton()` sends CPU tensors to Triton too
(under TRITON_INTERPRET=1). The cache block size is `layout.BLOCK_TOKENS`.
Imports only torch and triton.
"""

from .compressor import compressor, naive_compressor, open_state_start, plan_rows, write_rows
from .dequant import fp4_dequant, fp8_dequant, naive_fp4_dequant, naive_fp8_dequant
from .dispatch import force_triton, use_triton
from .errors import ConfigError, KernelError, ShapeError
from .indexer import indexer_topk, naive_indexer_scores, naive_indexer_topk
from .layout import BLOCK_TOKENS, pool_from_rows, rope_tables
from .mhc import hc_post, hc_pre, hc_split_sinkhorn, naive_hc_post, naive_hc_pre, naive_hc_split_sinkhorn
from .rope_norm import inverse_rope, naive_inverse_rope, naive_rmsnorm_rope, naive_rope, rmsnorm_rope, rope
from .sparse_attn import naive_sparse_attn, sparse_attn

__all__ = [
    "compressor", "naive_compressor", "open_state_start", "plan_rows", "write_rows",
    "fp4_dequant", "fp8_dequant", "naive_fp4_dequant", "naive_fp8_dequant",
    "force_triton", "use_triton",
    "ConfigError", "KernelError", "ShapeError",
    "indexer_topk", "naive_indexer_scores", "naive_indexer_topk",
    "BLOCK_TOKENS", "pool_from_rows", "rope_tables",
    "hc_post", "hc_pre", "hc_split_sinkhorn", "naive_hc_post", "naive_hc_pre", "naive_hc_split_sinkhorn",
    "inverse_rope", "naive_inverse_rope", "naive_rmsnorm_rope", "naive_rope", "rmsnorm_rope", "rope",
    "naive_sparse_attn", "sparse_attn",
]
