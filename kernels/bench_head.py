"""CPU benchmark: the output head of a decode step, the C GEMM (kernels.cpu_native.linear_colmajor) vs torch.

    python -m kernels.bench_head [--vocab 129280] [--hidden 256] [--rows 1,4,16,32] [--threads N] [--reps 20]

y = x·Wᵀ for a few rows x against a [vocab, hidden] fp32 weight (the small dev checkpoint's head by default: 132 MB).
Timed side by side, median of --reps runs each: the C GEMM on the column-major weight the CPU head keeps
(inference.checkpoint.loader.head_layout_), torch's F.linear (MKL) on the same weight, and F.linear on a row-major
copy (the layout as loaded). For one row the memory bound is the weight's bytes ÷ the copy bandwidth of the weight
measured in the same run (read + write of a buffer of its size). Prints a table, then one JSON line.
"""

import argparse
import json
import os
import statistics
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads OpenMP: spinning threads stall when shared

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from . import cpu_native  # noqa: E402


def _median_s(fn, reps: int) -> float:
    fn()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--vocab", type=int, default=129280, help="output columns (the head's vocabulary)")
    ap.add_argument("--hidden", type=int, default=256, help="input width (the model's hidden size)")
    ap.add_argument("--rows", default="1,4,16,32", help="comma-separated row counts (requests decoding together)")
    ap.add_argument("--threads", type=int, default=0, help="torch threads, which the C GEMM uses too (0: default)")
    ap.add_argument("--reps", type=int, default=20, help="timed runs of each (median)")
    a = ap.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    if not cpu_native.available("gemm"):
        raise SystemExit("kernels.bench_head: the C GEMM could not be built here (no C compiler, or no AVX-512)")
    g = torch.Generator().manual_seed(0)
    col = torch.randn(a.hidden, a.vocab, generator=g).t()  # column-major [vocab, hidden]
    row = col.contiguous()
    nbytes = col.numel() * col.element_size()
    scratch = torch.empty_like(row)
    bandwidth = 2 * nbytes / _median_s(lambda: scratch.copy_(row), a.reps)
    out = {"threads": torch.get_num_threads(), "vocab": a.vocab, "hidden": a.hidden, "weight_bytes": nbytes,
           "copy_bandwidth_bytes_per_s": round(bandwidth), "rows": {}}
    print(f"{torch.get_num_threads()} threads; weight {nbytes / 1e6:.1f} MB fp32; copy bandwidth "
          f"{bandwidth / 1e9:.1f} GB/s; one-row bound {1e3 * nbytes / bandwidth:.2f} ms")
    print(f"{'rows':>5} {'C ms':>8} {'torch col ms':>13} {'torch row ms':>13} {'torch/C':>8} {'C GFLOP/s':>10}")
    for m in (int(r) for r in a.rows.split(",")):
        x = torch.randn(m, a.hidden, generator=g)
        with torch.no_grad():
            ok = cpu_native.linear_colmajor(x, col) is not None  # beyond GEMM_MAX_ROWS the head runs torch
            c = _median_s(lambda x=x: cpu_native.linear_colmajor(x, col), a.reps) if ok else None
            tc = _median_s(lambda x=x: F.linear(x, col), a.reps)
            tr = _median_s(lambda x=x: F.linear(x, row), a.reps)
        flops = 2 * m * a.hidden * a.vocab
        cells = ((f"{1e3 * c:8.2f}", f"{tc / c:8.2f}", f"{flops / c / 1e9:10.1f}") if ok else
                 ("-" * 8, "-" * 8, "-" * 10))
        print(f"{m:5d} {cells[0]} {1e3 * tc:13.2f} {1e3 * tr:13.2f} {cells[1]} {cells[2]}"
              + ("" if ok else "  (more rows than GEMM_MAX_ROWS: the head runs torch)"))
        out["rows"][str(m)] = {"c_s": round(c, 6) if ok else None, "torch_colmajor_s": round(tc, 6),
                               "torch_rowmajor_s": round(tr, 6), "torch_over_c": round(tc / c, 3) if ok else None,
                               "c_used_by_head": ok}
    out["one_row_bound_s"] = round(nbytes / bandwidth, 6)
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
