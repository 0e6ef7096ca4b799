"""Sizes the kernels, the model and the engine share. Pure Python, so the engine's bookkeeping (block manager,
configs) can use them without loading torch or triton."""

BLOCK_TOKENS = 128  # token positions covered by one cache block (docs/cache-layout.md#blocks)
