"""Incremental decode state laid out as docs/cache-layout.md says: history rows, window rows, per-sequence open state.

A simple contiguous-per-sequence implementation: history rows of a layer are one growing tensor whose row w
belongs to history block (w * ratio) // 128 at offset w % (128 // ratio); the window is a ring of
`sliding_window` rows at slot `position % sliding_window` (with window 128 that is the block offset); the
open state holds the partial compression window and, for CSA, the overlap carry of the previous window."""

from dataclasses import dataclass, field

import torch

from inference.errors import InputError
from inference.model.attention_ops import row_pool
from inference.model.config import BLOCK_TOKENS, CSA, SLIDING, ModelArgs


class GrowingRows:
    """Append-only rows [b, n, d] with amortised O(1) appends (capacity doubles)."""

    def __init__(self, batch: int, dim: int, dtype: torch.dtype, device: torch.device | str = "cpu"):
        self.buf = torch.zeros(batch, 16, dim, dtype=dtype, device=device)
        self.n = 0

    def append(self, rows: torch.Tensor) -> None:  # rows: [b, k, d]
        k = rows.shape[1]
        if self.n + k > self.buf.shape[1]:
            cap = max(self.buf.shape[1] * 2, self.n + k)
            grown = self.buf.new_zeros(self.buf.shape[0], cap, self.buf.shape[2])
            grown[:, : self.n] = self.buf[:, : self.n]
            self.buf = grown
        self.buf[:, self.n : self.n + k] = rows.to(self.buf.dtype)
        self.n += k

    def view(self) -> torch.Tensor:  # [b, n, d]
        return self.buf[:, : self.n]

    def blocks(self, rpb: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The rows as a kernel pool: (pool [nb, rpb, d], int32 table [b, nblk]) (a copy into rpb-row blocks)."""
        return row_pool(self.view(), rpb)

    def truncate(self, n: int) -> None:
        self.n = min(self.n, n)


@dataclass
class CompressorState:
    """Open state of one compressor: the partial window (projections + gate scores incl. ape) and the CSA carry."""

    ratio: int
    open_kv: torch.Tensor  # [b, m, coff*d] fp32; rows [0, pos % m) are valid
    open_score: torch.Tensor  # [b, m, coff*d] fp32
    carry_kv: torch.Tensor | None  # [b, m, d] fp32: A-half of the previous closed window (CSA overlap)
    carry_score: torch.Tensor | None  # [b, m, d] fp32; -inf before the first window closes
    _rows: tuple | None = field(default=None, init=False, repr=False, compare=False)  # open_rows' views

    @classmethod
    def new(cls, batch: int, ratio: int, dim: int, overlap: bool, device) -> "CompressorState":
        coff = 2 if overlap else 1
        z = torch.zeros(batch, ratio, coff * dim, device=device)
        carry_kv = torch.zeros(batch, ratio, dim, device=device) if overlap else None
        carry_score = torch.full((batch, ratio, dim), float("-inf"), device=device) if overlap else None
        return cls(ratio, z, z.clone(), carry_kv, carry_score)

    def open_rows(self) -> tuple[tuple[torch.Tensor, ...], tuple[torch.Tensor, ...]]:
        """Views of the open window's m rows of batch row 0: (kv rows, score rows), [coff*d] each, made once while
        open_kv and open_score stay the same tensors (a decode step of many sequences writes them in one copy)."""
        c = self._rows
        if c is None or c[0] is not self.open_kv or c[1] is not self.open_score:
            c = self._rows = (self.open_kv, self.open_score, self.open_kv[0].unbind(0), self.open_score[0].unbind(0))
        return c[2], c[3]


@dataclass
class LayerState:
    """Per-layer state: window ring, history (compressed rows, indexer keys), open compressor states."""

    window: torch.Tensor  # [b, W, head_dim], slot = position % W
    comp_rows: GrowingRows | None = None  # [b, n_rows, head_dim] (CSA/HCA)
    index_keys: GrowingRows | None = None  # [b, n_rows, index_head_dim] (CSA)
    compressor: CompressorState | None = None
    indexer: CompressorState | None = None

    def window_rows(self, start_pos: int) -> torch.Tensor:
        """Rows of positions max(0, start_pos-W+1) … start_pos-1 in position order: [b, P, d]."""
        w = self.window.shape[1]
        first = max(0, start_pos - (w - 1))
        slots = torch.arange(first, start_pos, device=self.window.device) % w
        return self.window[:, slots]

    def write_window(self, kv: torch.Tensor, start_pos: int) -> None:
        """Store the last min(s, W) rows of kv [b, s, d] (positions start_pos …) in the ring."""
        w, s = self.window.shape[1], kv.shape[1]
        keep = min(s, w)
        pos = torch.arange(start_pos + s - keep, start_pos + s, device=kv.device)
        self.window[:, pos % w] = kv[:, s - keep :].to(self.window.dtype)


@dataclass
class ModelState:
    """Everything a sequence (batch of equal-length sequences) needs to continue decoding."""

    args: ModelArgs
    layers: list[LayerState]
    num_tokens: int = 0
    token_ids: list[torch.Tensor] = field(default_factory=list)  # per forward call [b, s]; hash routing / MTP

    @classmethod
    def new(cls, args: ModelArgs, batch: int = 1, dtype: torch.dtype = torch.float32, device="cpu") -> "ModelState":
        layers = []
        for ratio, kind in zip(args.compress_ratios, args.attn_types):
            st = LayerState(window=torch.zeros(batch, args.sliding_window, args.head_dim, dtype=dtype, device=device))
            if kind != SLIDING:
                overlap = kind == CSA
                st.comp_rows = GrowingRows(batch, args.head_dim, dtype, device)
                st.compressor = CompressorState.new(batch, ratio, args.head_dim, overlap, device)
                if overlap:
                    st.index_keys = GrowingRows(batch, args.index_head_dim, dtype, device)
                    st.indexer = CompressorState.new(batch, ratio, args.index_head_dim, True, device)
            layers.append(st)
        return cls(args, layers)

    @property
    def batch(self) -> int:
        return self.layers[0].window.shape[0]

    def check_start(self, start_pos: int, batch: int) -> None:
        if start_pos != self.num_tokens:
            raise InputError(f"start_pos {start_pos} does not continue the state, which holds {self.num_tokens} "
                             f"positions")
        if batch != self.batch:
            raise InputError(f"batch {batch} does not match the state's batch {self.batch}")

    def history_block(self, layer_id: int, block: int) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """(compressed rows [b, 128/m, d], indexer keys [b, 128/m, d_I]) of one 128-position history block."""
        st, ratio = self.layers[layer_id], self.args.compress_ratios[layer_id]
        if st.comp_rows is None:
            return None, None
        per = BLOCK_TOKENS // ratio
        rows = st.comp_rows.view()[:, block * per : (block + 1) * per]
        keys = st.index_keys.view()[:, block * per : (block + 1) * per] if st.index_keys is not None else None
        return rows, keys

    def bytes_per_token(self) -> float:
        """History bytes per token (amortised), as in docs/cache-layout.md#sizes."""
        total = 0.0
        for st, ratio in zip(self.layers, self.args.compress_ratios):
            if st.comp_rows is not None:
                total += st.comp_rows.buf.shape[2] * st.comp_rows.buf.element_size() / ratio
            if st.index_keys is not None:
                total += st.index_keys.buf.shape[2] * st.index_keys.buf.element_size() / ratio
        return total
