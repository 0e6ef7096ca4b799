"""The cache tensors: history pool (compressed rows, indexer keys) and window pool, sized by a memory budget."""

import torch

from inference.engine.layout import CacheLayout
from inference.errors import ConfigError
from inference.model.config import BLOCK_TOKENS, CSA, SLIDING

TORCH_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


def plan_pools(layout: CacheLayout, cache_bytes: int, num_window_slots: int) -> int:
    """Number of history blocks the budget leaves after the window slots."""
    window = num_window_slots * layout.window_block_bytes
    if layout.history_block_bytes == 0:
        raise ConfigError("this config has no compressed layers, so there is no history to page")
    n = (cache_bytes - window) // layout.history_block_bytes
    if n < 2:
        raise ConfigError(f"cache_bytes {cache_bytes} is too small: {num_window_slots} window slots take {window} B "
                          f"and one history block takes {layout.history_block_bytes} B")
    return n


class CachePools:
    """rows[l]: [blocks, 128/m, head_dim]; keys[l]: [blocks, 128/m, d_I] (CSA); window[l]: [slots, 128, d]."""

    def __init__(self, layout: CacheLayout, num_blocks: int, num_window_slots: int, device="cpu"):
        a, dt = layout.args, TORCH_DTYPES[layout.dtype]
        self.layout, self.num_blocks, self.num_slots, self.device = layout, num_blocks, num_window_slots, device
        self.rows: list[torch.Tensor | None] = []
        self.keys: list[torch.Tensor | None] = []
        self.window: list[torch.Tensor] = []
        for i in range(layout.num_layers):
            n = layout.rows_per_block(i)
            kind = layout.kind(i)
            self.rows.append(torch.zeros(num_blocks, n, a.head_dim, dtype=dt, device=device) if kind != SLIDING
                             else None)
            self.keys.append(torch.zeros(num_blocks, n, a.index_head_dim, dtype=dt, device=device) if kind == CSA
                             else None)
            self.window.append(torch.zeros(num_window_slots, BLOCK_TOKENS, a.head_dim, dtype=dt, device=device))
        self.carries: dict[int, list] = {}  # checkpoint slot -> per layer (compressor, indexer) carry tensors

    def nbytes(self) -> int:
        ts = [t for t in self.rows + self.keys + self.window if t is not None]
        return sum(t.numel() * t.element_size() for t in ts)

    def copy_window(self, src: int, dst: int) -> None:
        for w in self.window:
            w[dst].copy_(w[src])
