"""wholedoc kernels: Triton kernels for DeepSeek-V4 attention with their plain-torch twins (`naive_*`).

Each family's module has `foo` (dispatch: CUDA → Triton, CPU → vectorized torch), `foo_triton`, `foo_torch` and
`naive_foo`.
Every dispatcher asks `dispatch.use_triton(x)`; `dispatch.force_triton()` sends CPU tensors to Triton too
(under TRITON_INTERPRET=1). The cache block size is `constants.BLOCK_TOKENS` (pure Python).
Names below load their submodule on first use; the `compressor` and `sparse_attn` dispatchers are imported from
their modules (`from kernels.sparse_attn import sparse_attn`), since those names are the submodules.
Imports only torch and triton.
"""

import importlib

# name -> submodule; loaded on first use (PEP 562), so `kernels.constants` stays free of torch and triton
_EXPORTS = {
    "naive_compressor": "compressor",
    "open_state_start": "compressor",
    "plan_rows": "compressor",
    "write_rows": "compressor",
    "fp4_dequant": "dequant",
    "fp8_dequant": "dequant",
    "naive_fp4_dequant": "dequant",
    "naive_fp8_dequant": "dequant",
    "force_triton": "dispatch",
    "use_triton": "dispatch",
    "ConfigError": "errors",
    "KernelError": "errors",
    "ShapeError": "errors",
    "indexer_topk": "indexer",
    "naive_indexer_scores": "indexer",
    "naive_indexer_topk": "indexer",
    "BLOCK_TOKENS": "constants",
    "pool_from_rows": "layout",
    "rope_tables": "layout",
    "hc_post": "mhc",
    "hc_pre": "mhc",
    "hc_split_sinkhorn": "mhc",
    "naive_hc_post": "mhc",
    "naive_hc_pre": "mhc",
    "naive_hc_split_sinkhorn": "mhc",
    "inverse_rope": "rope_norm",
    "naive_inverse_rope": "rope_norm",
    "naive_rmsnorm_rope": "rope_norm",
    "naive_rope": "rope_norm",
    "rmsnorm_rope": "rope_norm",
    "rope": "rope_norm",
    "naive_sparse_attn": "sparse_attn",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'kernels' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    globals()[name] = value
    return value
