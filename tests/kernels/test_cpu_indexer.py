"""kernels.cpu_indexer: the fused C indexer (scores, ReLU, head sum, top-k) of a CPU prefill chunk."""

import shutil

import pytest
import torch

from kernels import cpu_indexer
from kernels.errors import KernelError
from kernels.indexer import indexer_topk_torch, naive_indexer_scores
from kernels.layout import pool_from_rows

HAVE_CC = bool(shutil.which("cc") or shutil.which("gcc"))


def _scores(q, w, keys, nvis):
    """float64 reference scores [T, N], −inf past each query's visible keys."""
    s = torch.einsum("thd,nd->thn", q.double(), keys.double()).relu().mul(w.double()[:, :, None]).sum(1)
    return s.masked_fill(torch.arange(keys.shape[0])[None] >= nvis[:, None], float("-inf"))


def _check(scores, picks, nvis, k, tol=1e-4):
    """picks are min(k, nvis) distinct visible rows whose scores are the k best (multiset, within tol), −1 after."""
    for t in range(scores.shape[0]):
        take = min(k, int(nvis[t]))
        sel = picks[t, :take].long()
        assert (picks[t, take:] == -1).all(), f"query {t}: picks past the {int(nvis[t])} visible rows must be −1"
        assert (sel >= 0).all() and (sel < nvis[t]).all() and sel.unique().numel() == take, f"query {t}: {sel}"
        best = scores[t].topk(take).values
        torch.testing.assert_close(scores[t][sel].sort().values, best.sort().values, rtol=tol, atol=tol)


def _case(t, hi, di, n, seed):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(t, hi, di, generator=g), torch.rand(t, hi, generator=g) - 0.2,
            torch.randn(n, di, generator=g))


def test_this_machine_builds_it():
    # CI and this machine have a compiler and AVX-512: the C path must be the one that runs
    assert HAVE_CC and cpu_indexer.available()


@pytest.mark.parametrize("hi", [1, 3, 8, 13, 16])
@pytest.mark.parametrize("k,n", [(5, 6), (5, 37), (16, 70), (16, 200), (16, 1000), (40, 5000)])
def test_picks_the_largest_scores(hi, k, n):
    """Head counts with and without a remainder past 8; rows short and long enough for every block size of the
    threshold (no blocks, 2, 4, 8, 16); keys not a multiple of the 32-key group."""
    q, w, keys = _case(19, hi, 24, n, hi * 1000 + n)
    nvis = torch.randint(1, n + 1, (19,), generator=torch.Generator().manual_seed(n))
    nvis[0], nvis[-1] = n, 1
    picks = cpu_indexer.topk(q, w, keys, nvis, k)
    assert picks is not None and picks.shape == (19, k) and picks.dtype == torch.int32
    _check(_scores(q, w, keys, nvis), picks, nvis, k)


def test_ties_are_deterministic_and_complete():
    """ReLU zeros tie by the hundred: still k distinct valid picks, the strictly larger ones first, then ties in
    ascending row order; the same picks on 1 and 2 threads."""
    q, w, keys = _case(24, 4, 16, 3000, 7)
    w[:12] = -w[:12].abs()                       # every score ≤ 0: most are exactly 0
    w[12:16] = 0.0                               # every score is 0: a row of ties only
    nvis = torch.full((24,), 3000)
    picks = cpu_indexer.topk(q, w, keys, nvis, 64)
    s = _scores(q, w, keys, nvis)
    _check(s, picks, nvis, 64)
    assert torch.equal(picks[12], torch.arange(64, dtype=torch.int32))
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        assert torch.equal(cpu_indexer.topk(q, w, keys, nvis, 64), picks)
    finally:
        torch.set_num_threads(threads)


def test_v4_flash_shape_long_rows():
    """64 heads × 128, 2048 visible keys, k 512 (a few queries): the V4-Flash indexer's shape."""
    q, w, keys = _case(5, 64, 128, 2100, 11)
    nvis = torch.tensor([513, 1000, 2048, 2100, 777])
    _check(_scores(q, w, keys, nvis), cpu_indexer.topk(q, w, keys, nvis, 512), nvis, 512)


def test_indexer_topk_torch_runs_it_and_agrees_with_the_torch_loops():
    """Through the CPU entry point (a paged key pool, two sequences, a prefill chunk each): the C path and the
    torch loops both pick a top-k of the naive scores."""
    g = torch.Generator().manual_seed(2)
    keys = torch.randn(2, 300, 32, generator=g)
    kp, kt = pool_from_rows(keys, 32, shuffle=True, seed=2)
    pos = torch.cat([torch.arange(600, 1100, 7), torch.arange(900, 1200, 3)]).to(torch.int32)
    seq = torch.cat([torch.zeros(72), torch.ones(100)]).to(torch.int32)
    q, w = torch.randn(pos.numel(), 8, 32, generator=g), torch.rand(pos.numel(), 8, generator=g)
    ref = naive_indexer_scores(q, w, seq, pos, kp, kt, 4)
    nvis = (pos.long() + 1) // 4
    calls = []
    real = cpu_indexer.topk
    try:
        cpu_indexer.topk = lambda *a: calls.append(a[0].shape[0]) or real(*a)
        fast = indexer_topk_torch(q, w, seq, pos, kp, kt, 4, 100)
    finally:
        cpu_indexer.topk = real
    assert sorted(calls) == [72, 100]            # one C call per sequence, every query that sees > k rows
    _check(ref.double(), fast, nvis, 100)
    _check(ref.double(), indexer_topk_torch(q, w, seq, pos, kp, kt, 4, 100, native=False), nvis, 100)


def test_what_it_does_not_take():
    q, w, keys = _case(3, 2, 8, 40, 1)
    nvis = torch.tensor([10, 40, 3])
    assert cpu_indexer.topk(q.bfloat16(), w, keys.bfloat16(), nvis, 4) is None     # bf16: the torch path runs
    with pytest.raises(ValueError, match="nvis"):
        cpu_indexer.topk(q, w, keys, torch.tensor([10, 41, 3]), 4)
    with pytest.raises(ValueError, match="nvis"):
        cpu_indexer.topk(q, w, keys, torch.tensor([0, 4, 3]), 4)


@pytest.mark.parametrize("hi,di", [(8, 64), (3, 24), (13, 32)])
def test_decode_queries_read_the_paged_keys_in_place(hi, di):
    """topk_paged: one query per sequence, keys through a shuffled block table, visible counts not a multiple of the
    8-key steps: a top-k of the float64 scores (tie-aware)."""
    g = torch.Generator().manual_seed(hi + di)
    keys = torch.randn(3, 300, di, generator=g)
    kp, kt = pool_from_rows(keys, 32, shuffle=True, seed=hi)
    q, w = torch.randn(3, hi, di, generator=g), torch.rand(3, hi, generator=g) - 0.2
    seq, nvis = torch.tensor([2, 0, 1], dtype=torch.int32), torch.tensor([300, 37, 123])
    picks = cpu_indexer.topk_paged(q, w, kp, kt, seq, nvis, 16)
    assert picks is not None and picks.shape == (3, 16)
    for t in range(3):
        s = _scores(q[t:t + 1], w[t:t + 1], keys[int(seq[t])], nvis[t:t + 1])
        _check(s, picks[t:t + 1], nvis[t:t + 1], 16)


def test_decode_keys_outside_the_pool_are_an_error():
    """A block-table entry of a decode query's keys that points past the pool (or is −1), a sequence past the
    table: a KernelError, nothing read."""
    g = torch.Generator().manual_seed(1)
    kp, kt = pool_from_rows(torch.randn(2, 100, 16, generator=g), 32)
    q, w = torch.randn(2, 4, 16, generator=g), torch.rand(2, 4, generator=g)
    seq, nvis = torch.tensor([0, 1], dtype=torch.int32), torch.tensor([100, 70])
    bad = kt.clone()
    bad[1, 2] = kp.shape[0]
    with pytest.raises(KernelError, match="outside its block table"):
        cpu_indexer.topk_paged(q, w, kp, bad, seq, nvis, 8)
    bad[1, 2] = -1
    with pytest.raises(KernelError):
        cpu_indexer.topk_paged(q, w, kp, bad, seq, nvis, 8)
    with pytest.raises(KernelError):
        cpu_indexer.topk_paged(q, w, kp, kt, torch.tensor([0, 2], dtype=torch.int32), nvis, 8)
    assert cpu_indexer.topk_paged(q, w, kp, kt, seq, nvis, 8).shape == (2, 8)
