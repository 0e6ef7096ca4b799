"""The prepared GPU script's logic, exercised on the CPU: its checks at tiny shapes (interpreter) and its metrics."""

from kernels.gpu_check import check_all, kernel_metrics


def test_check_all_small_passes(tdev):
    res = check_all(tdev, small=True)
    names = {r["kernel"] for r in res}
    assert {"sparse_attn_r4", "sparse_attn_r4_split4", "indexer_scores", "compressor_r4", "hc_pre", "fp4_dequant",
            "inverse_rope"} <= names
    bad = [r for r in res if not r["ok"]]
    assert not bad, bad


def test_kernel_metrics_dense_decode():
    r = kernel_metrics("dense", 131072, 1, 1.0)
    assert abs(r["tflops"] - 4 * 64 * 512 * 131072 / 1e12) < 1e-9
    # one program reads all 131072 rows of 512 bf16 + q and o (64 × 512 bf16 each)
    assert abs(r["gbps"] - (131072 * 512 * 2 + 2 * 64 * 512 * 2) / 1e9) < 1e-9
