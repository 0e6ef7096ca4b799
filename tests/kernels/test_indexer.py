"""Lightning indexer: scores and top-k (Triton, CPU path) against the naive twin; top-k compared tie-aware."""

import pytest
import torch

from kernels.errors import ConfigError, ShapeError
from kernels.indexer import (
    _topk_by_blocks,
    indexer_scores_triton,
    indexer_topk,
    indexer_topk_torch,
    indexer_topk_triton,
    naive_indexer_scores,
    naive_indexer_topk,
)
from kernels.layout import pool_from_rows
from tests.kernels.conftest import assert_close
from tests.kernels.ref_layout import indexer_topk_gather

POS = [0, 2, 3, 4, 63, 64, 130, 1, 7, 8, 99]        # < one window, at ratio/row-block boundaries, ragged 7 + 4
SEQ = [0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1]


def _case(hi, di, ratio, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    n = max(POS) // ratio + 1
    keys = torch.randn(2, n, di, generator=g)
    kp, kt = pool_from_rows(keys, 128 // ratio, shuffle=True, seed=seed)
    q = torch.randn(len(POS), hi, di, generator=g)
    w = torch.rand(len(POS), hi, generator=g) + 0.1
    return q.to(dtype), w, torch.tensor(SEQ, dtype=torch.int32), torch.tensor(POS, dtype=torch.int32), kp.to(dtype), kt


def _check_topk(scores, picks, k):
    """Tie-aware: picks are distinct visible rows whose scores equal the k best scores (multiset), −1 after."""
    for i in range(scores.shape[0]):
        row = scores[i]
        nvis = int(torch.isfinite(row).sum())
        take = min(k, nvis)
        got = picks[i]
        assert (got[take:] == -1).all(), f"query {i}: picks past the {nvis} visible rows must be −1"
        sel = got[:take].long()
        assert (sel >= 0).all() and (sel < nvis).all() and sel.unique().numel() == take, f"query {i}: {sel}"
        torch.testing.assert_close(row[sel].sort().values, row.topk(take).values.sort().values)


CASES = [pytest.param(4, 32, 4, 5, id="HI4-DI32-r4-k5"), pytest.param(3, 24, 8, 40, id="HI3-DI24-r8-k40gtN"),
         pytest.param(20, 16, 16, 2, id="HI20-DI16-r16-k2")]


@pytest.mark.parametrize("hi,di,ratio,k", CASES)
def test_triton_scores_and_topk(tdev, hi, di, ratio, k):
    q, w, seq, pos, kp, kt = _case(hi, di, ratio)
    ref = naive_indexer_scores(q, w, seq, pos, kp, kt, ratio)
    mv = [x.to(tdev) for x in (q, w, seq, pos, kp, kt)]
    s = indexer_scores_triton(*mv, ratio).cpu()
    assert torch.equal(torch.isinf(s), torch.isinf(ref))
    fin = torch.isfinite(ref)
    assert_close(ref[fin], s[fin], 1e-5, atol=1e-5, what="scores")
    _check_topk(ref, indexer_topk_triton(*mv, ratio, k, chunk=3).cpu(), k)


def test_triton_fp16(tdev):
    q, w, seq, pos, kp, kt = _case(4, 32, 4, dtype=torch.float16)
    ref = naive_indexer_scores(q, w, seq, pos, kp, kt, 4)
    s = indexer_scores_triton(*[x.to(tdev) for x in (q, w, seq, pos, kp, kt)], 4).cpu()
    fin = torch.isfinite(ref)
    assert_close(ref[fin], s[fin], 2e-3, what="fp16 scores")


@pytest.mark.parametrize("hi,di,ratio,k", CASES)
def test_cpu_path(hi, di, ratio, k):
    q, w, seq, pos, kp, kt = _case(hi, di, ratio)
    ref = naive_indexer_scores(q, w, seq, pos, kp, kt, ratio)
    torch_only = dict(native=False)  # the torch loops, also where the C indexer runs by default
    _check_topk(ref, indexer_topk_torch(q, w, seq, pos, kp, kt, ratio, k, budget_bytes=1, **torch_only), k)
    # 64-key GEMM blocks
    _check_topk(ref, indexer_topk_torch(q, w, seq, pos, kp, kt, ratio, k, cache_bytes=1, **torch_only), k)
    _check_topk(ref, indexer_topk_torch(q, w, seq, pos, kp, kt, ratio, k), k)
    _check_topk(ref, indexer_topk(q, w, seq, pos, kp, kt, ratio, k), k)
    _check_topk(ref, naive_indexer_topk(q, w, seq, pos, kp, kt, ratio, k), k)


def test_visible_le_k_selects_all():
    q, w, seq, pos, kp, kt = _case(4, 32, 4)
    picks = indexer_topk(q, w, seq, pos, kp, kt, 4, 64)
    for i, p in enumerate(POS):
        got = sorted(x for x in picks[i].tolist() if x >= 0)
        assert got == list(range((p + 1) // 4))


def test_naive_scores_match_loop():
    q, w, seq, pos, kp, kt = _case(2, 8, 4)
    s = naive_indexer_scores(q, w, seq, pos, kp, kt, 4)
    i, p = 6, POS[6]                                                  # seq 0, position 130 → 32 visible rows
    for r in (0, 17, 31):
        k = kp[kt[0, r // 32], r % 32]
        expect = sum(float(w[i, h]) * max(0.0, float(q[i, h] @ k)) for h in range(2))
        assert abs(float(s[i, r]) - expect) < 1e-5
    assert torch.isinf(s[i, (p + 1) // 4:]).all()


def test_bad_inputs():
    q, w, seq, pos, kp, kt = _case(4, 32, 4)
    with pytest.raises(ShapeError):
        indexer_topk(q, w[:, :2], seq, pos, kp, kt, 4, 4)
    with pytest.raises(ConfigError):
        indexer_topk(q, w, seq, pos, kp, kt, 4, 0)
    with pytest.raises(ShapeError):
        indexer_topk(q, w, seq, pos, kp, kt, 8, 4)                     # pool has 32 rows/block, ratio 8 needs 16


def test_gather_layout_matches_block_table_layout():
    """The model-layout adapter (contiguous keys [b,n,DI], shared positions) picks the same rows."""
    g = torch.Generator().manual_seed(5)
    b, s, hi, di, n = 2, 6, 4, 16, 9
    q, k, w = torch.randn(b, s, hi, di, generator=g), torch.randn(b, n, di, generator=g), torch.rand(b, s, hi)
    positions = torch.tensor([0, 3, 4, 17, 30, 37])
    out = indexer_topk_gather(q, k, w, positions, 4, 5)
    for bb in range(b):
        kp, kt = pool_from_rows(k[bb:bb + 1], 32)
        seq = torch.zeros(s, dtype=torch.int32)
        ref = naive_indexer_scores(q[bb], w[bb], seq, positions.to(torch.int32), kp, kt, 4)
        _check_topk(ref, out[bb], 5)


def test_empty_batch():
    q, w, seq, pos, kp, kt = _case(4, 32, 4)
    assert indexer_topk(q[:0], w[:0], seq[:0], pos[:0], kp, kt, 4, 5).shape == (0, 5)


def test_cpu_path_decode_queries_batched():
    """Queries alone in their sequence (decode) are scored together, keys gathered per query; mixed with a chunk."""
    g = torch.Generator().manual_seed(3)
    keys = torch.randn(4, 40, 16, generator=g)
    kp, kt = pool_from_rows(keys, 32, shuffle=True, seed=3)
    pos = torch.tensor([130, 99, 150, 20, 140, 141, 2], dtype=torch.int32)
    seq = torch.tensor([0, 1, 2, 3, 3, 3, 1], dtype=torch.int32)
    q, w = torch.randn(7, 4, 16, generator=g), torch.rand(7, 4, generator=g) + 0.1
    ref = naive_indexer_scores(q, w, seq, pos, kp, kt, 4)
    for kw in ({}, {"budget_bytes": 1}):
        _check_topk(ref, indexer_topk_torch(q, w, seq, pos, kp, kt, 4, 6, **kw), 6)


@pytest.mark.parametrize("k,n,visible", [(5, 200, 200), (5, 203, 150), (16, 1000, 40), (3, 64, 64)])
def test_topk_by_blocks_is_a_topk(k, n, visible):
    """The blocked top-k (long rows) returns a valid top-k, ties (ReLU zeros) and −inf past the visible rows too."""
    g = torch.Generator().manual_seed(k + n)
    s = torch.randn(6, n, generator=g).relu()                                   # about half the scores tie at 0
    s[1] = 0.0                                                                  # a row of ties only
    s[:, visible:] = float("-inf")
    _check_topk(s, _topk_by_blocks(s, k).to(torch.int32), k)


@pytest.mark.parametrize("native", [False, True])
def test_ties_at_the_kth_place_go_to_the_lower_rows(native):
    """Every path picks the same rows as the naive twin when the k-th largest score ties (all-zero ReLU rows, the
    common case in small random models): the chunk path, the blocked top-k of long rows and the decode path."""
    g = torch.Generator().manual_seed(9)
    n = 1200
    keys = torch.randn(3, n, 8, generator=g)
    kp, kt = pool_from_rows(keys, 32, shuffle=True, seed=9)
    pos = torch.tensor([4 * n - 1, 4 * n - 3, 2000, 4 * n - 1, 4 * n - 1], dtype=torch.int32)
    seq = torch.tensor([0, 0, 0, 1, 2], dtype=torch.int32)          # a chunk of 3, then two decode queries
    q = torch.randn(5, 2, 8, generator=g)
    w = -torch.rand(5, 2, generator=g)                                # every score ≤ 0, most exactly 0
    w[1] = 0.0                                                        # a row of ties only
    want = naive_indexer_topk(q, w, seq, pos, kp, kt, 4, 16)
    for kw in ({}, {"blocked_topk_from": 1}):
        got = indexer_topk_torch(q, w, seq, pos, kp, kt, 4, 16, native=native, **kw)
        assert torch.equal(got.sort(1).values, want.sort(1).values)
    assert torch.equal(want[1], torch.arange(16, dtype=torch.int32))
