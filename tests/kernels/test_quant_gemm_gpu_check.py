"""kernels.gpu_check's quantized-GEMM part, exercised on the CPU: its checks at small shapes (interpreter), its
benchmark shapes and its weights generator (the timed part needs CUDA)."""

import torch

from kernels.gpu_check import QUANT_SHAPES, _quant_weights, check_quant_gemms
from kernels.quant_gemm import dequant_weights


def test_quant_checks_pass_at_small_shapes(tdev):
    res = check_quant_gemms(tdev, small=True)
    names = {(r["kernel"], r["dtype"]) for r in res}
    for k in ("quant_linear_fp8", "quant_linear_fp8_act8", "quant_grouped_fp4", "quant_grouped_fp4_act8"):
        assert (k, "float32") in names and (k, "bfloat16") in names
    assert all(r["ok"] for r in res), res
    # the outputs here reach |y| ~ 30: fp32 (IEEE dots) agrees to ~1e-6; bf16 to an ulp or two of the rounded
    # output (0.125 at 16-32); a wrong scale block or group offset is off by whole units
    bound = {"float32": 1e-3, "bfloat16": 0.25}
    assert all(r["max_abs_err"] <= bound[r["dtype"]] for r in res), res


def test_bench_shapes_are_valid_release_gemms():
    g = torch.Generator().manual_seed(0)
    for name, fmt, m, _n, k, e in QUANT_SHAPES:
        assert fmt in ("fp8", "fp4") and m > 0 and (fmt == "fp8" or k % 32 == 0), name
        assert (e > 0) == (fmt == "fp4")  # the routed experts are the grouped FP4 GEMMs
    w, s = _quant_weights("fp4", 8, 64, g, experts=3)
    assert w.shape == (3, 8, 32) and s.shape == (3, 8, 2) and s.dtype == torch.float8_e8m0fnu
    vals = dequant_weights(w, s, "fp4", torch.float32)
    assert torch.isfinite(vals).all() and vals.abs().max() < 6 * 2 ** 4
