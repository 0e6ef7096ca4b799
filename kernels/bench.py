"""CPU benchmark: one CSA and one HCA layer's attention vs dense causal MQA, V4-Flash shape, prefill + decode.

    python -m kernels.bench [--quick] [--lengths 8192,32768,131072] [--prefill 1024] [--dense-sample 256] [--threads N]
                            [--dtype float32|bfloat16] [--plot FILE.png]

CSA = indexer scores + top-k + sparse attention; HCA = sparse attention over window + all visible rows; dense =
torch SDPA over the whole causal context with one KV head (MQA: heads folded into the query axis). Prefill = the
last `--prefill` queries of an L-token context, decode = the last query. Dense prefill is timed on `--dense-sample`
of those queries (evenly spaced; every one sees ≈ L keys, so its cost is linear in the query count) and scaled;
`--dense-sample 0` times them all. Prints a table, then one JSON line. Efficiency = achieved FLOPs/s
(kernels.flops) ÷ the matmul FLOPs/s of the same dtype (fp32 unless --dtype) measured in the same run, just before
each length. --plot draws attention time against L, dense vs CSA / HCA (matplotlib, the `bench` extra).
"""

import argparse
import json
import os
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads OpenMP: spinning threads stall when shared

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from .flops import AttnShape, prefill_flops, token_flops  # noqa: E402
from .indexer import indexer_topk  # noqa: E402
from .layout import BLOCK_TOKENS, rows_per_block  # noqa: E402
from .sparse_attn import sparse_attn  # noqa: E402

S = AttnShape()


def _time(fn, reps: int = 1) -> float:
    """Best wall time of `reps` runs after one warm-up."""
    fn()
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def matmul_flops_per_s(n: int = 2048, dtype: torch.dtype = torch.float32) -> float:
    """Measured GEMM throughput of this machine in dtype (FLOP/s)."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    return 2 * n ** 3 / _time(lambda: a @ b, reps=3)


class Layer:
    """Random V4-Flash-shaped caches for one sequence of L tokens (contiguous block tables)."""

    def __init__(self, L: int, n_q: int, seed: int = 0, dtype: torch.dtype = torch.float32):
        g = torch.Generator().manual_seed(seed)
        h, d = S.n_heads, S.head_dim
        self.L, self.scale = L, d ** -0.5
        self.kv = torch.randn(L, d, generator=g)                                   # raw rows: window pool + dense K=V
        nb = L // BLOCK_TOKENS
        self.win_pool, self.win_table = self.kv.view(nb, BLOCK_TOKENS, d), torch.arange(nb, dtype=torch.int32)[None]
        self.csa_pool = torch.randn(nb, rows_per_block(S.csa_ratio), d, generator=g)
        self.hca_pool = torch.randn(nb, rows_per_block(S.hca_ratio), d, generator=g)
        self.key_pool = torch.randn(nb, rows_per_block(S.csa_ratio), S.index_head_dim, generator=g)
        self.table = self.win_table
        self.q = torch.randn(n_q, h, d, generator=g)
        self.qi = torch.randn(n_q, S.index_n_heads, S.index_head_dim, generator=g)
        self.w = torch.rand(n_q, S.index_n_heads, generator=g) * (S.index_head_dim * S.index_n_heads) ** -0.5
        self.sink = torch.zeros(h)
        self.pos = torch.arange(L - n_q, L, dtype=torch.int32)
        self.seq = torch.zeros(n_q, dtype=torch.int32)
        for name in ("kv", "csa_pool", "hca_pool", "key_pool", "q", "qi"):  # rows and queries in the run's dtype
            setattr(self, name, getattr(self, name).to(dtype))
        self.win_pool = self.kv.view(nb, BLOCK_TOKENS, d)

    def csa(self, sl: slice):
        topk = indexer_topk(self.qi[sl], self.w[sl], self.seq[sl], self.pos[sl], self.key_pool, self.table,
                            S.csa_ratio, S.index_topk)
        return sparse_attn(self.q[sl], self.seq[sl], self.pos[sl], self.win_pool, self.win_table, self.sink,
                           self.scale, S.window, self.csa_pool, self.table, S.csa_ratio, topk)

    def hca(self, sl: slice):
        return sparse_attn(self.q[sl], self.seq[sl], self.pos[sl], self.win_pool, self.win_table, self.sink,
                           self.scale, S.window, self.hca_pool, self.table, S.hca_ratio)

    def dense(self, idx: torch.Tensor, chunk: int = 16):
        """Causal MQA over the whole context for the queries at rows idx: heads folded into the query axis so
        the one KV head is read once per chunk (SDPA's CPU flash kernel), bottom-right causal mask."""
        h, d = S.n_heads, S.head_dim
        k = self.kv[None, None]                                                    # [1, 1, L, D]
        out = []
        for c in range(0, idx.numel(), chunk):
            ic = idx[c:c + chunk]
            q = self.q[ic].reshape(1, 1, ic.numel() * h, d)                        # [1, 1, Tq·H, D]
            pos = self.pos[ic].long()
            mask = None
            if int(pos.min()) < self.L - 1:                                        # a query that can't see every key
                mask = (torch.arange(self.L)[None, :] <= pos[:, None]).repeat_interleave(h, 0)   # [Tq·H, L]
            out.append(F.scaled_dot_product_attention(q, k, k, attn_mask=mask, scale=self.scale))
        return torch.cat(out, 2)


def bench_length(L: int, n_q: int, dense_sample: int, dtype: torch.dtype = torch.float32) -> dict:
    lay = Layer(L, n_q, dtype=dtype)
    all_q, last = slice(0, n_q), slice(n_q - 1, n_q)
    warm = slice(n_q - 8, n_q)
    r = {}
    r["matmul"] = matmul_flops_per_s(dtype=dtype)                                 # same conditions as this length
    lay.csa(warm)
    lay.hca(warm)
    r["csa_prefill"] = min(_timed(lambda: lay.csa(all_q)) for _ in range(2))
    r["hca_prefill"] = min(_timed(lambda: lay.hca(all_q)) for _ in range(2))
    r["csa_decode"] = _time(lambda: lay.csa(last), reps=3)
    r["hca_decode"] = _time(lambda: lay.hca(last), reps=3)
    m = n_q if dense_sample <= 0 else min(dense_sample, n_q)
    idx = torch.linspace(0, n_q - 1, m).round().long()
    lay.dense(idx[:8])
    r["dense_prefill"] = _timed(lambda: lay.dense(idx)) * n_q / m
    r["dense_decode"] = _time(lambda: lay.dense(torch.tensor([n_q - 1])), reps=3)
    r["flops"] = {k: prefill_flops(k, n_q, L) for k in ("csa", "hca", "dense")}
    r["flops_decode"] = {k: token_flops(k, L) for k in ("csa", "hca", "dense")}
    return r


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _tag(L: int) -> str:
    return f"{L // 1024}k"


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="8K and 32K only")
    ap.add_argument("--lengths", default="", help="comma-separated context lengths (multiples of 1024)")
    ap.add_argument("--prefill", type=int, default=1024, help="prefill queries (the last ones of the context)")
    ap.add_argument("--dense-sample", type=int, default=256, help="dense prefill queries timed (0 = all)")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch default); 1 is steadier on a "
                    "shared, oversubscribed machine")
    ap.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32", help="rows, queries and matmuls")
    ap.add_argument("--plot", metavar="FILE.png", help="draw attention time against L (needs matplotlib)")
    a = ap.parse_args(argv)
    dtype = getattr(torch, a.dtype)
    if a.threads:
        torch.set_num_threads(a.threads)
    lengths = [int(x) for x in a.lengths.split(",")] if a.lengths else ([8192, 32768] if a.quick else
                                                                        [8192, 32768, 131072])
    torch.manual_seed(0)
    print(f"{torch.get_num_threads()} threads; prefill = last {a.prefill} queries; dense prefill timed on "
          f"{a.dense_sample or a.prefill} queries and scaled; efficiency vs the fp32 matmul measured before each L")
    hdr = (f"{'L':>6} {'phase':>7} {'CSA s':>9} {'HCA s':>9} {'dense s':>9} {'dense/CSA':>10} {'dense/HCA':>10} "
           f"{'CSA GF/s':>9} {'CSA eff':>8} {'HCA GF/s':>9} {'dense GF/s':>10} {'mm GF/s':>8}")
    print(hdr)
    out, res = {"threads": torch.get_num_threads(), "dtype": a.dtype, "prefill_queries": a.prefill,
                "dense_prefill_sampled_queries": a.dense_sample or a.prefill}, {}
    for L in lengths:
        r = res[L] = bench_length(L, a.prefill, a.dense_sample, dtype)
        mm = r["matmul"]
        out[f"matmul_gflops_{_tag(L)}"] = round(mm / 1e9, 2)
        for phase, fl in (("prefill", r["flops"]), ("decode", r["flops_decode"])):
            c, h, d = r[f"csa_{phase}"], r[f"hca_{phase}"], r[f"dense_{phase}"]
            print(f"{_tag(L):>6} {phase:>7} {c:9.4f} {h:9.4f} {d:9.4f} {d / c:10.2f} {d / h:10.2f} "
                  f"{fl['csa'] / c / 1e9:9.2f} {fl['csa'] / c / mm:8.3f} {fl['hca'] / h / 1e9:9.2f} "
                  f"{fl['dense'] / d / 1e9:10.2f} {mm / 1e9:8.1f}")
            sfx = "" if phase == "prefill" else "_decode"
            out[f"dense_over_csa{sfx}_{_tag(L)}"] = round(d / c, 3)
            out[f"dense_over_hca{sfx}_{_tag(L)}"] = round(d / h, 3)
            out[f"csa_efficiency{sfx}_{_tag(L)}"] = round(fl["csa"] / c / mm, 4)
            out[f"csa_time{sfx}_{_tag(L)}"] = round(c, 5)
            out[f"hca_time{sfx}_{_tag(L)}"] = round(h, 5)
            out[f"dense_time{sfx}_{_tag(L)}"] = round(d, 5)
    big, mid = res.get(131072), res.get(32768)
    out["csa_growth_32k_128k"] = round(big["csa_prefill"] / mid["csa_prefill"], 3) if big and mid else None
    out["dense_growth_32k_128k"] = round(big["dense_prefill"] / mid["dense_prefill"], 3) if big and mid else None
    print(json.dumps(out))
    if a.plot:
        plot(res, out, a.plot)
    return out


def plot(res: dict, out: dict, path: str) -> None:
    """Attention seconds against context length L: dense MQA vs CSA vs HCA, prefill and decode panels."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lengths = sorted(res)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, phase in zip(axes, ("prefill", "decode")):
        for kind, style in (("dense", "s--"), ("csa", "o-"), ("hca", "^-")):
            ax.plot(lengths, [res[L][f"{kind}_{phase}"] for L in lengths], style, label=kind.upper())
        what = f"last {out['prefill_queries']} queries" if phase == "prefill" else "one query"
        ax.set(xscale="log", yscale="log", xlabel="context L (tokens)", ylabel="seconds",
               title=f"one layer's attention, {phase} ({what}), {out['dtype']}")
        ax.set_xticks(lengths, [f"{L // 1024}K" for L in lengths])
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
