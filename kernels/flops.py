"""Analytic FLOP and byte counters for V4 attention (docs/model.md#flops-and-bytes); a multiply-add counts as 2.

Per attended row a layer costs 2·H·(D for q·k + D for p·v). SWA attends min(window, n) rows, CSA adds
min(topk, n//ratio) rows plus the indexer (2·HI·DI per visible row, ~3·HI for ReLU and head weights), HCA adds
n//ratio rows. Dense is the comparator: every one of n rows, one shared KV head (MQA), same H and D.
"""

from dataclasses import dataclass

KINDS = ("swa", "csa", "hca", "dense")


@dataclass(frozen=True, slots=True)
class AttnShape:
    """Attention shape of one model (defaults: V4-Flash)."""

    n_heads: int = 64               # H query heads, one shared K=V latent
    head_dim: int = 512             # D
    window: int = 128               # sliding window incl. the current token
    index_n_heads: int = 64         # HI
    index_head_dim: int = 128       # DI
    index_topk: int = 512           # k
    csa_ratio: int = 4
    hca_ratio: int = 128
    kv_bytes: int = 2               # bytes per stored latent element (bf16)
    index_bytes: int = 2            # bytes per stored indexer-key element


def attended_rows(kind: str, n: int, s: AttnShape = AttnShape()) -> int:
    """Rows one query at context length n (itself included) attends."""
    win = min(s.window, n)
    if kind == "swa":
        return win
    if kind == "csa":
        return win + min(s.index_topk, n // s.csa_ratio)
    if kind == "hca":
        return win + n // s.hca_ratio
    if kind == "dense":
        return n
    raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")


def indexer_flops(n: int, s: AttnShape = AttnShape()) -> int:
    """Lightning-indexer FLOPs of one query over its n // ratio visible rows."""
    rows = n // s.csa_ratio
    return 2 * s.index_n_heads * s.index_head_dim * rows + 3 * s.index_n_heads * rows


def core_flops(kind: str, n: int, s: AttnShape = AttnShape()) -> int:
    """Attention (q·k and p·v) FLOPs of one query at context n."""
    return 4 * s.n_heads * s.head_dim * attended_rows(kind, n, s)


def token_flops(kind: str, n: int, s: AttnShape = AttnShape()) -> int:
    """All attention FLOPs of one query at context n (indexer included for CSA)."""
    return core_flops(kind, n, s) + (indexer_flops(n, s) if kind == "csa" else 0)


def token_bytes(kind: str, n: int, s: AttnShape = AttnShape()) -> int:
    """Cache bytes one decode query reads: attended rows, plus every visible indexer key for CSA."""
    b = attended_rows(kind, n, s) * s.head_dim * s.kv_bytes
    if kind == "csa":
        b += (n // s.csa_ratio) * s.index_head_dim * s.index_bytes
    return b


def prefill_flops(kind: str, n_queries: int, ctx: int, s: AttnShape = AttnShape()) -> int:
    """Σ token_flops over the last n_queries positions of a ctx-token prompt (query i sees ctx-n_queries+i+1)."""
    return sum(token_flops(kind, n, s) for n in range(ctx - n_queries + 1, ctx + 1))


def kv_bytes_per_token(kind: str, s: AttnShape = AttnShape()) -> float:
    """History-cache bytes per token of one layer (docs/cache-layout.md#sizes: compressed rows amortized, no window)."""
    if kind == "csa":
        return (s.head_dim * s.kv_bytes + s.index_head_dim * s.index_bytes) / s.csa_ratio
    if kind == "hca":
        return s.head_dim * s.kv_bytes / s.hca_ratio
    return 0.0


def layer_kinds(compress_ratios: list[int], csa_ratio: int = 4) -> list[str]:
    """Layer kinds from a config's compress_ratios (0 → swa, csa_ratio → csa, other → hca)."""
    return ["swa" if r == 0 else "csa" if r == csa_ratio else "hca" for r in compress_ratios]


def model_token_flops(kinds: list[str], n: int, s: AttnShape = AttnShape()) -> int:
    """Attention FLOPs of one generated token at context n, summed over the model's layers."""
    return sum(token_flops(k, n, s) for k in kinds)


def model_token_bytes(kinds: list[str], n: int, s: AttnShape = AttnShape()) -> int:
    """Cache bytes read for one generated token at context n, summed over layers."""
    return sum(token_bytes(k, n, s) for k in kinds)
