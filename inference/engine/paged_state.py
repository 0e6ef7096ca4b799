"""A sequence's state on the paged cache: the interface of inference.model.state.ModelState, backed by CachePools.

Compressed rows of history block i live at pools.rows[l][block_table[i]]; the sliding window is a 128-row ring in
the sequence's window slot (slot row = position % 128). Positions below `shared_upto` are adopted prefix-cache
blocks: rows the model closes there (recompute after a hit) are dropped, never written."""

import torch

from inference.engine.pools import CachePools
from inference.errors import InputError
from inference.model.config import BLOCK_TOKENS, CSA, SLIDING
from inference.model.state import CompressorState


class PagedRows:
    """Append-only compressed rows (or indexer keys) of one layer, read and written through the block table."""

    def __init__(self, pool: torch.Tensor, state: "PagedState", ratio: int, n: int):
        self.pool, self.state, self.ratio, self.n = pool, state, ratio, n
        self.per = BLOCK_TOKENS // ratio

    def append(self, rows: torch.Tensor) -> None:  # rows: [1, k, d]
        k = rows.shape[1]
        if k:
            w = torch.arange(self.n, self.n + k, device=self.pool.device)
            keep = w * self.ratio >= self.state.shared_upto
            if bool(keep.any()):
                w = w[keep]
                bids = self.state.table_tensor()[w // self.per]
                self.pool[bids, w % self.per] = rows[0, keep].to(self.pool.dtype)
        self.n += k

    @staticmethod
    def append_decode(rows_of: list["PagedRows"], rows: torch.Tensor) -> None:
        """append() of one row to each of several sequences' rows of one layer (one pool): rows [k, d], row i to
        rows_of[i], in one indexed store. As append(), rows of positions below a sequence's shared_upto are dropped."""
        pool = rows_of[0].pool
        flat, keep = [], []
        for i, r in enumerate(rows_of):
            if r.n * r.ratio >= r.state.shared_upto:
                flat.append(r.state.block_table[r.n // r.per] * r.per + r.n % r.per)
                keep.append(i)
            r.n += 1
        if keep:
            pool.view(-1, pool.shape[-1])[torch.tensor(flat, device=pool.device)] = (
                rows if len(keep) == len(rows_of) else rows[keep]).to(pool.dtype)

    def blocks(self, rpb: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The history pool itself and this sequence's int32 block table [1, nblk]: the kernels read rows in place."""
        assert rpb == self.per, (rpb, self.per)
        return self.pool, self.state.table_tensor(torch.int32)[None]


class PagedLayerState:
    """One layer's view: window ring in the window slot, compressed rows and keys in the history pool, open state."""

    def __init__(self, state: "PagedState", layer: int, n_tokens: int):
        pools, layout = state.pools, state.pools.layout
        a, ratio, kind = layout.args, layout.ratio(layer), layout.kind(layer)
        self.state, self.layer, self.sliding_window = state, layer, a.sliding_window
        self.comp_rows = self.index_keys = self.compressor = self.indexer = None
        if kind != SLIDING:
            self.comp_rows = PagedRows(pools.rows[layer], state, ratio, n_tokens // ratio)
            self.compressor = CompressorState.new(1, ratio, a.head_dim, kind == CSA, pools.device)
            if kind == CSA:
                self.index_keys = PagedRows(pools.keys[layer], state, ratio, n_tokens // ratio)
                self.indexer = CompressorState.new(1, ratio, a.index_head_dim, True, pools.device)

    @property
    def ring(self) -> torch.Tensor:  # [128, d]
        return self.state.pools.window[self.layer][self.state.slot]

    def window_rows(self, start_pos: int) -> torch.Tensor:
        """Rows of positions max(0, start_pos-W+1) … start_pos-1: [1, P, d]."""
        first = max(0, start_pos - (self.sliding_window - 1))
        return self.ring[torch.arange(first, start_pos, device=self.ring.device) % BLOCK_TOKENS][None]

    def window_in_place(self, pos: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The window pool of this layer and a block table [1, pos // 128 + 1] that points every block at this
        sequence's slot: the ring holds positions pos−127 … pos at rows position % 128, so a query at pos (its row
        written) reads its window in place, with no copy."""
        return self.state.pools.window[self.layer], self.state.ring_table(pos // BLOCK_TOKENS + 1)

    def write_window(self, kv: torch.Tensor, start_pos: int) -> None:
        """Store the last min(s, 128) rows of kv [1, s, d] in the ring."""
        s = kv.shape[1]
        if s == 1:  # a decode token
            self.ring[start_pos % BLOCK_TOKENS] = kv[0, 0]
            return
        keep = min(s, BLOCK_TOKENS)
        pos = torch.arange(start_pos + s - keep, start_pos + s, device=self.ring.device)
        self.ring[pos % BLOCK_TOKENS] = kv[0, s - keep :].to(self.ring.dtype)


class _NoTokenLog(list):
    """The model logs each call's input ids; the engine keeps token ids itself."""

    def append(self, _item) -> None:
        pass


class PagedState:
    """What Transformer.forward needs from a state, for one sequence on the paged cache."""

    logs_tokens = False  # the runner need not log input ids (token_ids discards them)

    def __init__(self, pools: CachePools, slot: int, num_tokens: int = 0, shared_upto: int = 0):
        self.pools, self.slot = pools, slot
        self.block_table: list[int] = []
        self._table: torch.Tensor | None = None  # block_table as int64 and int32 tensors (rebuilt when it grows)
        self._table32: torch.Tensor | None = None
        self._ring: torch.Tensor | None = None  # ring_table
        self.num_tokens, self.shared_upto = num_tokens, shared_upto
        self.exact_from = 0  # positions below this may hold window rows rebuilt from a garbage start (recompute)
        self.token_ids = _NoTokenLog()
        self.layers = [PagedLayerState(self, i, num_tokens) for i in range(pools.layout.num_layers)]

    @property
    def batch(self) -> int:
        return 1

    def table_tensor(self, dtype: torch.dtype = torch.long) -> torch.Tensor:
        if self._table is None or len(self._table) != len(self.block_table):
            self._table = torch.tensor(self.block_table, dtype=torch.long, device=self.pools.device)
            self._table32 = self._table.to(torch.int32)
        return self._table if dtype == torch.long else self._table32

    def ring_table(self, nblk: int) -> torch.Tensor:
        """int32 [1, ≥ nblk] with every entry this sequence's window slot (window_in_place), reused across layers."""
        if self._ring is None or self._ring.shape[1] < nblk:
            self._ring = torch.full((1, max(nblk, 2 * (self._ring.shape[1] if self._ring is not None else 8))),
                                    self.slot, dtype=torch.int32, device=self.pools.device)
        return self._ring

    def set_blocks(self, block_ids: list[int]) -> None:
        self.block_table = list(block_ids)
        self._table = None

    def check_start(self, start_pos: int, batch: int) -> None:
        if start_pos != self.num_tokens or batch != 1:
            raise InputError(f"paged state holds {self.num_tokens} positions of one sequence; got start_pos "
                             f"{start_pos}, batch {batch}")
        if len(self.block_table) * BLOCK_TOKENS < start_pos:
            raise InputError("block table too short for start_pos")

    def rewind(self, num_tokens: int) -> None:
        """Restart the computation at num_tokens (a multiple of 128) for the recompute fallback."""
        assert num_tokens % BLOCK_TOKENS == 0
        self.num_tokens = num_tokens
        for st in self.layers:
            for rows in (st.comp_rows, st.index_keys):
                if rows is not None:
                    rows.n = num_tokens // rows.ratio

    def save_checkpoint(self, slot: int) -> None:
        """Snapshot window rows and CSA carries (state at a block boundary) into a window slot."""
        self.pools.copy_window(self.slot, slot)
        self.pools.carries[slot] = [_carry(st.compressor) + _carry(st.indexer) for st in self.layers]

    def load_checkpoint(self, slot: int) -> None:
        self.pools.copy_window(slot, self.slot)
        for st, saved in zip(self.layers, self.pools.carries[slot]):
            for cs, (kv, score) in ((st.compressor, saved[0:2]), (st.indexer, saved[2:4])):
                if cs is not None and kv is not None:
                    cs.carry_kv, cs.carry_score = kv.clone(), score.clone()


def _carry(cs: CompressorState | None) -> tuple:
    if cs is None or cs.carry_kv is None:
        return (None, None)
    return (cs.carry_kv.clone(), cs.carry_score.clone())
