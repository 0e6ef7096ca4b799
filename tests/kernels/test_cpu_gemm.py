"""kernels.cpu_native.linear_colmajor: the C GEMM of the CPU output head (model.Head)."""

import shutil

import pytest
import torch
import torch.nn.functional as F

from kernels import cpu_native

HAVE_CC = bool(shutil.which("cc") or shutil.which("gcc"))


def _colmajor(n: int, k: int, seed: int) -> torch.Tensor:
    """A [n, k] weight stored column-major, as head_layout_ keeps the CPU head."""
    return torch.randn(k, n, generator=torch.Generator().manual_seed(seed)).t()


def test_this_machine_builds_it():
    # CI and this machine have a compiler: the C path must be the one that runs (a silent fallback is a failure)
    assert HAVE_CC and cpu_native.available("gemm")


@pytest.mark.parametrize("rows", [1, 2, 3, 4, 5, 16, 31, 32])
@pytest.mark.parametrize("n,k", [(64 * 40, 256), (64 * 7 + 17, 256), (45, 7), (64, 1)])
def test_matches_float64_matmul(rows, n, k):
    w = _colmajor(n, k, rows * 100 + n)
    x = torch.randn(rows, k, generator=torch.Generator().manual_seed(n + k))
    y = cpu_native.linear_colmajor(x, w)
    assert y is not None and y.shape == (rows, n) and y.dtype == torch.float32
    ref = (x.double() @ w.double().t()).float()
    torch.testing.assert_close(y, ref, rtol=1e-5, atol=1e-5 * k ** 0.5)


def test_leading_dims_are_kept():
    w, x = _colmajor(300, 32, 1), torch.randn(2, 3, 32)
    y = cpu_native.linear_colmajor(x, w)
    assert y.shape == (2, 3, 300)
    torch.testing.assert_close(y, F.linear(x, w), rtol=1e-5, atol=1e-5)


def test_a_rows_logits_do_not_depend_on_the_batch_or_the_threads():
    # one request's logits are the same decoding alone or beside 15 others, on 1 or 2 threads (a weight large
    # enough that the GEMM starts its threads even for one row)
    w = _colmajor(64 * 1100 + 9, 256, 3)
    x = torch.randn(16, 256, generator=torch.Generator().manual_seed(4))
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        batch = cpu_native.linear_colmajor(x, w)
        torch.set_num_threads(1)
        alone = [cpu_native.linear_colmajor(x[i : i + 1], w) for i in range(16)]
        fives = cpu_native.linear_colmajor(x[3:8], w)
    finally:
        torch.set_num_threads(threads)
    for i in range(16):
        assert torch.equal(batch[i : i + 1], alone[i])
    assert torch.equal(fives, batch[3:8])


def test_what_does_not_qualify_is_left_to_torch():
    w, x = _colmajor(128, 16, 5), torch.randn(2, 16)
    assert cpu_native.linear_colmajor(torch.randn(cpu_native.GEMM_MAX_ROWS + 1, 16), w) is None  # MKL is faster
    assert cpu_native.linear_colmajor(x, w.contiguous()) is None  # row-major weight
    assert cpu_native.linear_colmajor(x.bfloat16(), w.bfloat16()) is None
    assert cpu_native.linear_colmajor(x.double(), w.double()) is None
    assert cpu_native.linear_colmajor(torch.randn(2, 15), w) is None  # shapes that do not fit
    wg = w.clone().requires_grad_()
    assert cpu_native.linear_colmajor(x, wg) is None  # autograd stays with torch
    with torch.no_grad():
        assert cpu_native.linear_colmajor(x, wg) is not None


def test_the_model_head_runs_it_for_a_colmajor_fp32_weight():
    from inference.model.model import Head

    head = Head(64, 200, torch.float32)
    x = torch.randn(3, 1, 64)
    with torch.no_grad():
        row_major = head(x)  # as constructed: contiguous [vocab, hidden], F.linear
        assert torch.equal(row_major, F.linear(x, head.weight))
        head.weight.data = head.weight.data.t().contiguous().t()
        col_major = head(x)
        assert torch.equal(col_major, cpu_native.linear_colmajor(x, head.weight))
    torch.testing.assert_close(col_major, row_major, rtol=1e-5, atol=1e-5)


def test_bench_head_runs_and_reports(capsys):
    """python -m kernels.bench_head at a toy size: the table, then one JSON line with every row count (speed is the
    benchmark's to report, not asserted)."""
    import json

    from kernels.bench_head import main

    out = main(["--vocab", "1000", "--hidden", "64", "--rows", "1,16,33", "--reps", "2"])
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1]) == out
    assert set(out["rows"]) == {"1", "16", "33"} and out["one_row_bound_s"] > 0
    assert out["rows"]["16"]["c_used_by_head"] and not out["rows"]["33"]["c_used_by_head"]
    assert out["rows"]["16"]["c_s"] > 0 and out["rows"]["33"]["c_s"] is None
    assert all(r["torch_colmajor_s"] > 0 and r["torch_rowmajor_s"] > 0 for r in out["rows"].values())
