"""Block-table row addressing (docs/cache-layout.md), shared by the plain-torch paths and the wrappers.

A pool is `[num_blocks, rows_per_block, D]`; a sequence's block table row maps block number -> pool block.
Row r of a sequence lives at `pool[table[seq, r // rows_per_block], r % rows_per_block]`.
"""

import torch

from .constants import BLOCK_TOKENS
from .errors import ConfigError, ShapeError, check


def rows_per_block(ratio: int) -> int:
    """Compressed rows per BLOCK_TOKENS-token block for a compression ratio dividing it (ratio 1 = raw rows)."""
    check(ratio >= 1 and BLOCK_TOKENS % ratio == 0, f"ratio {ratio} must divide {BLOCK_TOKENS}", ConfigError)
    return BLOCK_TOKENS // ratio


def check_pool(pool: torch.Tensor, table: torch.Tensor, rpb: int, name: str) -> None:
    """Assert a pool `[num_blocks, rpb, D]` and its int32 block table `[B, max_blocks]` are usable together."""
    check(pool.dim() == 3 and pool.shape[1] == rpb,
          f"{name} pool must be [num_blocks, {rpb}, D], got {tuple(pool.shape)}")
    check(pool.is_contiguous(), f"{name} pool must be contiguous")
    check(table.dim() == 2 and table.dtype == torch.int32, f"{name} block table must be int32 [B, max_blocks]")
    check(table.device == pool.device, f"{name} block table and pool must be on one device")


def flat_rows(table: torch.Tensor, seq_ids: torch.Tensor, rows: torch.Tensor, rpb: int) -> torch.Tensor:
    """Flat pool row index (`pool.view(-1, D)`) of logical rows `rows` of sequences `seq_ids` (same shape; row >= 0)."""
    blk = table[seq_ids.long(), torch.div(rows, rpb, rounding_mode="floor").long()]
    return blk.long() * rpb + (rows % rpb).long()


def gather_rows(pool: torch.Tensor, table: torch.Tensor, seq_ids: torch.Tensor, rows: torch.Tensor,
                zero_invalid: bool = True) -> torch.Tensor:
    """Rows `[..., D]` for logical row indices `rows` of sequences `seq_ids` (broadcast to rows). Index −1 gives a
    zero row, or (zero_invalid=False, for callers that mask the scores anyway) the sequence's row 0."""
    rpb, d = pool.shape[1], pool.shape[2]
    seq = seq_ids.expand_as(rows)
    idx = flat_rows(table, seq, rows.clamp_min(0), rpb)
    out = pool.reshape(-1, d)[idx.reshape(-1)].reshape(*rows.shape, d)
    return out.masked_fill(~(rows >= 0).unsqueeze(-1), 0) if zero_invalid else out


def sequence_rows(pool: torch.Tensor, table_row: torch.Tensor, n: int) -> torch.Tensor:
    """The first n logical rows `[n, D]` of one sequence (a view-free gather of whole blocks)."""
    rpb, d = pool.shape[1], pool.shape[2]
    nb = -(-n // rpb)
    check(nb <= table_row.numel(), f"block table too short: need {nb} blocks for {n} rows, have {table_row.numel()}")
    return pool[table_row[:nb].long()].reshape(-1, d)[:n]


def queries_by_sequence(seq_ids: torch.Tensor, positions: torch.Tensor):
    """(sequence, query indices sorted by position, their positions int64) for each sequence among the queries."""
    if seq_ids.numel() and bool((seq_ids == seq_ids[0]).all()):   # one sequence (a prefill chunk): no grouping
        pos, qi = positions.long().sort(stable=True)
        yield int(seq_ids[0]), qi, pos
        return
    for s in torch.unique(seq_ids).tolist():
        qi = (seq_ids == s).nonzero().squeeze(1)
        pos, order = positions[qi].long().sort(stable=True)
        yield s, qi[order], pos


def single_query_order(seq_ids: torch.Tensor) -> torch.Tensor | None:
    """When every query is alone in its sequence (a decode step of many sequences): the query indices in the order
    queries_by_sequence yields them (ascending sequence), found in a few ops instead of several per sequence;
    otherwise None."""
    if seq_ids.numel() < 2:
        return None
    s, order = seq_ids.sort(stable=True)
    return order if bool((s[1:] != s[:-1]).all()) else None


def pool_from_rows(rows: torch.Tensor, rpb: int, shuffle: bool = False, seed: int = 0):
    """Pack rows `[B, N, D]` into (pool `[num_blocks, rpb, D]`, int32 table `[B, ceil(N/rpb)]`) (gpu_check, tests)."""
    b, n, d = rows.shape
    nb = -(-n // rpb)
    padded = rows.new_zeros(b, nb * rpb, d)
    padded[:, :n] = rows
    blocks = padded.reshape(b * nb, rpb, d)
    order = torch.arange(b * nb)
    if shuffle:  # non-trivial block tables: logical block i of seq s lives at a random pool block
        order = torch.randperm(b * nb, generator=torch.Generator().manual_seed(seed))
    pool = torch.empty_like(blocks)
    pool[order] = blocks
    return pool.contiguous(), order.reshape(b, nb).to(torch.int32).to(rows.device)


def rope_tables(rope_dim: int, max_pos: int, theta: float = 10000.0, device=None):
    """Plain RoPE cos/sin tables `[max_pos, rope_dim // 2]` fp32 (the model passes its own YaRN tables)."""
    check(rope_dim % 2 == 0, f"rope_dim {rope_dim} must be even", ConfigError)
    inv = theta ** (-torch.arange(0, rope_dim, 2, dtype=torch.float64, device=device) / rope_dim)
    ang = torch.arange(max_pos, dtype=torch.float64, device=device)[:, None] * inv[None, :]
    return ang.cos().float(), ang.sin().float()


def check_positions(seq_ids: torch.Tensor, positions: torch.Tensor, t: int, device) -> None:
    """Per-query sequence ids and absolute positions: int32 `[T]` each, on the query's device."""
    for name, x in (("seq_ids", seq_ids), ("positions", positions)):
        check(x.shape == (t,) and x.dtype == torch.int32, f"{name} must be int32 [{t}], got {x.dtype} {tuple(x.shape)}")
        check(x.device == device, f"{name} must be on {device}")


__all__ = ["BLOCK_TOKENS", "ShapeError", "rows_per_block", "check_pool", "flat_rows", "gather_rows",
           "sequence_rows", "queries_by_sequence", "pool_from_rows", "rope_tables", "check_positions"]
