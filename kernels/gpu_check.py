"""Prepared GPU run: every compiled Triton kernel against its naive twin, then CUDA benchmarks (a few minutes).

    python -m kernels.gpu_check [--no-bench] [--lengths 131072,1048576] [--prefill 1024]

Checks run at real V4-Flash widths (H 64 × 512, indexer 64 × 128, hc 4 × 4096) in bf16 and fp32 (tf32 dots).
The quantized GEMMs (kernels.quant_gemm: FP8 linear, FP4 grouped routed experts) are checked against their twins (rms
error ratio and max abs error) and timed beside a dense bf16 GEMM of the same shape.
The benchmark reports time, TFLOPS (kernels.flops) and GB/s (rows each program reads) of the CSA / HCA prefill and
decode kernels at 128K and 1M, the indexer, and dense causal MQA (torch SDPA, query-chunked) up to 128K.
Anchor: FlashMLA's published sparse prefill, 640 TFLOPS on H800. Ends with one JSON line.
"""

import argparse
import json
import math

import torch

from .compressor import compressor_triton, naive_compressor
from .dequant import FP8_BLOCK, fp4_dequant_triton, fp8_dequant_triton, naive_fp4_dequant, naive_fp8_dequant
from .flops import AttnShape, attended_rows, indexer_flops, prefill_flops
from .indexer import indexer_scores_triton, indexer_topk_triton, naive_indexer_scores
from .layout import BLOCK_TOKENS, pool_from_rows, rope_tables, rows_per_block
from .mhc import hc_post_triton, hc_pre_triton, naive_hc_post, naive_hc_pre
from .quant_gemm import quant_grouped_torch, quant_grouped_triton, quant_linear_torch, quant_linear_triton
from .rope_norm import inverse_rope_triton, naive_inverse_rope, naive_rmsnorm_rope, rmsnorm_rope_triton
from .sparse_attn import naive_sparse_attn, sparse_attn_triton

FLASHMLA_TFLOPS = 640.0

##### Correctness #####


def _err(ref: torch.Tensor, out: torch.Tensor) -> float:
    """RMS error ratio (FLA assert_close metric), computed in fp64 on the CPU."""
    ref, out = ref.double().cpu(), out.double().cpu()
    if not torch.isfinite(out).all():
        return math.inf
    return ((out - ref).pow(2).mean().sqrt() / ref.pow(2).mean().sqrt().clamp_min(1e-12)).item()


def check_all(device: str, small: bool = False) -> list[dict]:
    """Run each Triton kernel on `device` and its twin in fp32; `small` = tiny shapes (CPU interpreter test)."""
    g = torch.Generator().manual_seed(0)
    rn = lambda *s: torch.randn(*s, generator=g)
    h, d, hi, di, rd = (4, 64, 4, 32, 16) if small else (64, 512, 64, 128, 64)
    L, nq, topk = (160, 6, 8) if small else (4096, 64, 512)
    res = []

    def add(name, dtype, err, tol):
        res.append({"kernel": name, "dtype": str(dtype).replace("torch.", ""), "err": err, "ok": err <= tol})

    for dtype, tol in ((torch.float32, 5e-3), (torch.bfloat16, 2e-2)):
        mv = lambda t, dt=dtype: t.to(device=device, dtype=dt if t.is_floating_point() else t.dtype)
        seq, pos = torch.zeros(nq, dtype=torch.int32), torch.arange(L - nq, L, dtype=torch.int32)
        pos[0] = 3                                                                    # one query shorter than a window
        wp, wt = pool_from_rows(rn(1, L, d), BLOCK_TOKENS, shuffle=True)
        for ratio in (4, 128 if not small else 32):
            cp, ct = pool_from_rows(rn(1, L // ratio, d), rows_per_block(ratio), shuffle=True, seed=1)
            q, sink = rn(nq, h, d), rn(h)
            tk = None
            if ratio == 4:
                kp, kt = pool_from_rows(rn(1, L // 4, di), rows_per_block(4), shuffle=True, seed=2)
                qi, w = rn(nq, hi, di), torch.rand(nq, hi, generator=g)
                ref_s = naive_indexer_scores(qi, w, seq, pos, kp, kt, 4)
                s = indexer_scores_triton(mv(qi), w.to(device), seq.to(device), pos.to(device), mv(kp),
                                          kt.to(device), 4)
                fin = torch.isfinite(ref_s)
                add("indexer_scores", dtype, _err(ref_s[fin], s.cpu()[fin]), tol)
                tk = indexer_topk_triton(qi.to(device), w.to(device), seq.to(device), pos.to(device), kp.to(device),
                                         kt.to(device), 4, topk).cpu()
            args = (q, seq, pos, wp, wt, sink, d ** -0.5, 128)                      # sliding window 128
            kw = dict(cmp_pool=cp, cmp_table=ct, ratio=ratio, topk_idxs=tk)
            ref = naive_sparse_attn(*[mv(a).cpu() if torch.is_tensor(a) else a for a in args],
                                    **{k: mv(v).cpu() if torch.is_tensor(v) else v for k, v in kw.items()})
            out = sparse_attn_triton(*[mv(a) if torch.is_tensor(a) else a for a in args],
                                     **{k: mv(v) if torch.is_tensor(v) else v for k, v in kw.items()})
            add(f"sparse_attn_r{ratio}", dtype, _err(ref.float(), out.float()), tol)
            out = sparse_attn_triton(*[mv(a) if torch.is_tensor(a) else a for a in args], num_splits=4,
                                     **{k: mv(v) if torch.is_tensor(v) else v for k, v in kw.items()})
            add(f"sparse_attn_r{ratio}_split4", dtype, _err(ref.float(), out.float()), tol)
        cos, sin = rope_tables(rd, L)
        x, nw = rn(nq, h, d), torch.rand(d, generator=g) + 0.5
        ref = naive_rmsnorm_rope(mv(x).cpu(), None, cos, sin, pos, rd)
        add("rmsnorm_rope", dtype, _err(ref.float(), rmsnorm_rope_triton(mv(x), None, cos.to(device), sin.to(device),
                                                                         pos.to(device), rd).float()), tol)
        ref = naive_inverse_rope(mv(x).cpu(), cos, sin, pos, rd)
        add("inverse_rope", dtype, _err(ref.float(), inverse_rope_triton(mv(x), cos.to(device), sin.to(device),
                                                                         pos.to(device), rd).float()), tol)
    for ratio, overlap in ((4, True), (16 if small else 128, False)):
        coff = 2 if overlap else 1
        n = 3 * ratio + 1
        kv, sc, ape = rn(n, coff * d), rn(n, coff * d), rn(ratio, coff * d)
        nw = torch.rand(d, generator=g) + 0.5
        cos, sin = rope_tables(rd, n + 1)
        meta = (torch.tensor([0, n]), torch.tensor([0]), torch.tensor([0]))
        kw = dict(ratio=ratio, overlap=overlap, rope_dim=rd)
        ref = naive_compressor(kv, sc, ape, nw, cos, sin, *meta, **kw)[0]
        out = compressor_triton(*[t.to(device) for t in (kv, sc, ape, nw, cos, sin, *meta)], **kw)[0]
        add(f"compressor_r{ratio}", torch.float32, _err(ref, out), 1e-4)
    hc, dm = (4, 40) if small else (4, 4096)
    x, fn, sc, base = rn(8, hc, dm), rn((2 + hc) * hc, hc * dm) * 0.02, torch.rand(3, generator=g) + 0.5, rn(24)
    kw = dict(iters=20, norm_eps=1e-6, hc_eps=1e-6)
    ref = naive_hc_pre(x, fn, sc, base, **kw)
    out = hc_pre_triton(x.to(device), fn.to(device), sc.to(device), base.to(device), **kw)
    add("hc_pre", torch.float32, max(_err(r, o) for r, o in zip(ref, out)), 1e-3)
    f = rn(8, dm)
    add("hc_post", torch.float32, _err(naive_hc_post(f, x, ref[1], ref[2]),
                                       hc_post_triton(f.to(device), x.to(device), ref[1].to(device),
                                                      ref[2].to(device))), 1e-5)
    n, k = (130, 288) if small else (2048, 7168)
    w8 = (rn(n, k) * 40).to(torch.float8_e4m3fn)
    s8 = torch.randint(118, 136, (-(-n // FP8_BLOCK), -(-k // FP8_BLOCK)), generator=g).to(torch.uint8)
    add("fp8_dequant", torch.bfloat16, _err(naive_fp8_dequant(w8, s8).float(),
                                            fp8_dequant_triton(w8.to(device), s8.to(device)).float()), 0.0)
    p4 = torch.randint(-128, 128, (n, k // 2), generator=g, dtype=torch.int8)
    s4 = torch.randint(120, 131, (n, k // 32), generator=g).to(torch.uint8)
    add("fp4_dequant", torch.bfloat16, _err(naive_fp4_dequant(p4, s4).float(),
                                            fp4_dequant_triton(p4.to(device), s4.to(device)).float()), 0.0)
    return res


def _quant_weights(fmt: str, n: int, k: int, g: torch.Generator, experts: int = 0):
    """Random release-format weights (ue8m0 scales in a realistic range), [experts, ...] when experts > 0."""
    lead = (experts,) if experts else ()
    if fmt == "fp8":
        w = (torch.randn(*lead, n, k, generator=g) * 100).to(torch.float8_e4m3fn)
        s = torch.randint(112, 122, (*lead, -(-n // FP8_BLOCK), -(-k // FP8_BLOCK)), generator=g).to(torch.uint8)
    else:
        w = torch.randint(-128, 128, (*lead, n, k // 2), generator=g, dtype=torch.int8)
        s = torch.randint(118, 124, (*lead, n, k // 32), generator=g).to(torch.uint8)
    return w, s.view(torch.float8_e8m0fnu)


def check_quant_gemms(device: str, small: bool = False) -> list[dict]:
    """Quantized GEMMs (kernels.quant_gemm) against their twins: rms error ratio and max abs error, bf16 and fp32,
    with and without FP8 activations, FP8 linear and FP4 grouped (routed experts) at V4-Flash widths."""
    g = torch.Generator().manual_seed(5)
    m, n, k = (37, 72, 300) if small else (512, 2048, 4096)
    e, rows = (4, [9, 0, 20, 3]) if small else (16, [64, 0, 300, 17] * 4)
    out = []
    for dtype, tol in ((torch.float32, 1e-4), (torch.bfloat16, 2e-2)):
        for act in (False, True):
            x = torch.randn(m, k, generator=g).to(dtype)
            w, s = _quant_weights("fp8", n, k, g)
            ref = quant_linear_torch(x, w, s, "fp8", act).float()
            got = quant_linear_triton(x.to(device), w.to(device), s.to(device), "fp8", act).float().cpu()
            out.append({"kernel": f"quant_linear_fp8{'_act8' if act else ''}", "dtype": str(dtype)[6:],
                        "err": _err(ref, got), "max_abs_err": (ref - got).abs().max().item(),
                        "ok": _err(ref, got) <= tol})
            kk = k if k % 32 == 0 else k + 32 - k % 32
            w4, s4 = _quant_weights("fp4", n, kk, g, e)
            off = torch.tensor([0] + rows).cumsum(0)
            xg = torch.randn(int(off[-1]), kk, generator=g).to(dtype)
            ref = quant_grouped_torch(xg, w4, s4, off, "fp4", act).float()
            got = quant_grouped_triton(xg.to(device), w4.to(device), s4.to(device), off.to(device), "fp4",
                                       act).float().cpu()
            out.append({"kernel": f"quant_grouped_fp4{'_act8' if act else ''}", "dtype": str(dtype)[6:],
                        "err": _err(ref, got), "max_abs_err": (ref - got).abs().max().item(),
                        "ok": _err(ref, got) <= tol})
    return out


##### Benchmark #####


def kernel_metrics(kind: str, L: int, n_q: int, seconds: float, s: AttnShape | None = None,
                   elem: int = 2, head_block: int = 16) -> dict:
    """TFLOPS and GB/s of one timed call: `n_q` last queries of an L context. Bytes = rows each program reads
    (every head block re-reads its query's rows) + q and o; the indexer reads every visible key once per query."""
    s = s or AttnShape()
    qs = range(L - n_q + 1, L + 1)
    if kind == "indexer":
        flops = sum(indexer_flops(n, s) for n in qs)
        byts = sum(n // s.csa_ratio for n in qs) * s.index_head_dim * elem
    else:
        flops = prefill_flops(kind, n_q, L, s)
        rows = sum(attended_rows(kind, n, s) for n in qs)
        progs = 1 if kind == "dense" else -(-s.n_heads // head_block)
        byts = rows * s.head_dim * elem * progs + 2 * n_q * s.n_heads * s.head_dim * elem
    return {"kind": kind, "L": L, "queries": n_q, "ms": seconds * 1e3, "tflops": flops / seconds / 1e12,
            "gbps": byts / seconds / 1e9}


def _bench_phase(L: int, nq: int, caches: dict, s: AttnShape) -> list[dict]:
    """Time one phase (nq last queries) of every kernel at context L with triton.testing.do_bench."""
    import torch.nn.functional as F
    from triton.testing import do_bench

    dev, bf = "cuda", torch.bfloat16
    g = torch.Generator(device=dev).manual_seed(1)
    q = torch.randn(nq, s.n_heads, s.head_dim, generator=g, device=dev, dtype=bf)
    qi = torch.randn(nq, s.index_n_heads, s.index_head_dim, generator=g, device=dev, dtype=bf)
    w = torch.rand(nq, s.index_n_heads, device=dev)
    pos = torch.arange(L - nq, L, dtype=torch.int32, device=dev)
    seq = torch.zeros(nq, dtype=torch.int32, device=dev)
    c = caches
    sink, scale = torch.zeros(s.n_heads, device=dev), s.head_dim ** -0.5
    tk = indexer_topk_triton(qi, w, seq, pos, c["keys"], c["tab"], s.csa_ratio, s.index_topk)
    runs = {
        "indexer": lambda: indexer_topk_triton(qi, w, seq, pos, c["keys"], c["tab"], s.csa_ratio, s.index_topk),
        "csa": lambda: sparse_attn_triton(q, seq, pos, c["win"], c["tab"], sink, scale, s.window, c["csa"], c["tab"],
                                          s.csa_ratio, tk),
        "hca": lambda: sparse_attn_triton(q, seq, pos, c["win"], c["tab"], sink, scale, s.window, c["hca"], c["tab"],
                                          s.hca_ratio),
        "csa_bh32": lambda: sparse_attn_triton(q, seq, pos, c["win"], c["tab"], sink, scale, s.window, c["csa"],
                                               c["tab"], s.csa_ratio, tk, block_h=32),   # tuning probe
    }

    def dense():
        k = c["kv"][None, None]                                                     # [1, 1, L, D]: one KV head
        for c0 in range(0, nq, 128):
            qc = q[c0:c0 + 128].transpose(0, 1)[None]
            m = torch.arange(L, device=dev)[None, :] <= pos[c0:c0 + 128].long()[:, None]
            F.scaled_dot_product_attention(qc, k, k, attn_mask=m, scale=scale, enable_gqa=True)

    if L <= 131072:
        runs["dense"] = dense
    out = []
    for kind, fn in runs.items():
        ms = do_bench(fn, warmup=5, rep=20)
        r = kernel_metrics(kind.split("_")[0], L, nq, ms / 1e3, s, head_block=32 if kind.endswith("bh32") else 16)
        r["kind"] = kind
        r["phase"] = "prefill" if nq > 1 else "decode"
        out.append(r)
        print(f"{L // 1024:>6}K {r['phase']:>7} {kind:>8} {ms:10.3f} ms {r['tflops']:8.2f} TFLOPS "
              f"{r['gbps']:8.1f} GB/s")
    return out


def bench_cuda(lengths, n_q: int) -> list[dict]:
    """CSA / HCA / indexer Triton paths and dense SDPA (≤ 128K) on CUDA, bf16, one sequence."""
    s, dev = AttnShape(), "cuda"
    out = []
    for L in lengths:
        g = torch.Generator(device=dev).manual_seed(0)
        rn = lambda *shape, g=g: torch.randn(*shape, generator=g, device=dev, dtype=torch.bfloat16)
        kv = rn(L, s.head_dim)
        nb = L // BLOCK_TOKENS
        caches = {"kv": kv, "win": kv.view(nb, BLOCK_TOKENS, s.head_dim),
                  "tab": torch.arange(nb, dtype=torch.int32, device=dev)[None],
                  "csa": rn(nb, rows_per_block(s.csa_ratio), s.head_dim),
                  "hca": rn(nb, rows_per_block(s.hca_ratio), s.head_dim),
                  "keys": rn(nb, rows_per_block(s.csa_ratio), s.index_head_dim)}
        for nq in (n_q, 1):
            out += _bench_phase(L, nq, caches, s)
        caches.clear()
        torch.cuda.empty_cache()
    return out


# V4-Flash GEMMs: (name, format, rows M, N, K, experts); grouped rows are spread evenly over the experts
QUANT_SHAPES = (("wq_b prefill", "fp8", 4096, 32768, 1024, 0), ("wo_b prefill", "fp8", 4096, 4096, 8192, 0),
                ("shared w1 decode", "fp8", 64, 2048, 4096, 0),
                ("experts w1 prefill", "fp4", 4096 * 6, 2048, 4096, 256),
                ("experts w2 prefill", "fp4", 4096 * 6, 4096, 2048, 256),
                ("experts w1 decode", "fp4", 64 * 6, 2048, 4096, 256))


def _bench_quant_one(name: str, fmt: str, m: int, n: int, k: int, e: int, g: torch.Generator) -> dict:
    from triton.testing import do_bench

    dev = "cuda"
    x = torch.randn(m, k, device=dev, dtype=torch.bfloat16)
    w, s = (t.to(dev) for t in _quant_weights(fmt, n, k, g, e))
    dense = torch.randn(k, n, device=dev, dtype=torch.bfloat16)
    if e:
        off = (torch.arange(e + 1, device=dev) * m) // e
        ms_q = do_bench(lambda: quant_grouped_triton(x, w, s, off, fmt), warmup=5, rep=30)
    else:
        ms_q = do_bench(lambda: quant_linear_triton(x, w, s, fmt), warmup=5, rep=30)
    ms_d = do_bench(lambda: x @ dense, warmup=5, rep=30)
    flops = 2 * m * n * k
    return {"gemm": name, "format": fmt, "M": m, "N": n, "K": k, "experts": e, "ms": ms_q,
            "tflops": flops / ms_q / 1e9, "dense_bf16_ms": ms_d, "dense_bf16_tflops": flops / ms_d / 1e9}


def bench_quant_gemms() -> list[dict]:
    """TFLOPS of each quantized GEMM (bf16 activations) beside a dense bf16 GEMM with the same FLOPs, on CUDA."""
    g, out = torch.Generator().manual_seed(9), []
    for shape in QUANT_SHAPES:
        r = _bench_quant_one(*shape, g)
        out.append(r)
        print(f"{r['gemm']:>20} {r['format']} {r['M']:>6}x{r['N']}x{r['K']} {r['ms']:9.3f} ms {r['tflops']:7.1f} "
              f"TFLOPS | dense bf16 {r['dense_bf16_ms']:8.3f} ms {r['dense_bf16_tflops']:7.1f} TFLOPS")
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--no-bench", action="store_true", help="the correctness checks only")
    ap.add_argument("--lengths", default="131072,1048576", help="context lengths to time, comma-separated")
    ap.add_argument("--prefill", type=int, default=1024, help="queries timed at the end of each context")
    a = ap.parse_args(argv)
    if not torch.cuda.is_available():
        raise SystemExit("kernels.gpu_check needs a CUDA device; on CPU run: TRITON_INTERPRET=1 pytest tests/kernels")
    checks = check_all("cuda") + check_quant_gemms("cuda")
    for c in checks:
        extra = f" max abs err {c['max_abs_err']:.2e}" if "max_abs_err" in c else ""
        print(f"{'ok ' if c['ok'] else 'BAD'} {c['kernel']:>16} {c['dtype']:>9} rms err ratio {c['err']:.2e}{extra}")
    summary = {"checks_ok": all(c["ok"] for c in checks), "checks": checks, "flashmla_anchor_tflops": FLASHMLA_TFLOPS}
    if not a.no_bench:
        summary["quant_gemm_bench"] = bench_quant_gemms()
        summary["bench"] = bench_cuda([int(x) for x in a.lengths.split(",")], a.prefill)
    print(json.dumps(summary))
    return 0 if summary["checks_ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
