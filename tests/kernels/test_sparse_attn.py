"""sparse_attn: Triton kernel and CPU fast path against the naive twin; the twin against a per-query loop."""

import pytest
import torch

from kernels.errors import ConfigError, ShapeError
from kernels.layout import BLOCK_TOKENS, pool_from_rows, rows_per_block
from kernels.sparse_attn import naive_sparse_attn, sparse_attn, sparse_attn_torch, sparse_attn_triton
from tests.kernels.conftest import assert_close
from tests.kernels.ref_layout import (
    naive_sparse_attn_gather,
    pool_at,
    sparse_attn_gather_torch,
    sparse_attn_gather_triton,
)


def _case(h, d, window, ratio, positions, seqs, k=None, dtype=torch.float32, seed=0, all_masked=()):
    """Two-sequence ragged batch with shuffled block tables; CSA picks are distinct visible rows (or −1)."""
    g = torch.Generator().manual_seed(seed)
    n_seq = max(seqs) + 1
    length = max(positions) + 1
    raw = torch.randn(n_seq, length, d, generator=g)
    wp, wt = pool_from_rows(raw, BLOCK_TOKENS, shuffle=True, seed=seed)
    args = dict(window=window)
    if ratio:
        cmp = torch.randn(n_seq, max(1, length // ratio), d, generator=g)
        cp, ct = pool_from_rows(cmp, rows_per_block(ratio), shuffle=True, seed=seed + 1)
        args.update(cmp_pool=cp.to(dtype), cmp_table=ct, ratio=ratio)
        if k is not None:
            tk = torch.full((len(positions), k), -1, dtype=torch.int32)
            for i, p in enumerate(positions):
                if i in all_masked:
                    continue
                picks = torch.randperm((p + 1) // ratio, generator=g)[:k]
                tk[i, :len(picks)] = picks.to(torch.int32)
            args["topk_idxs"] = tk
    q = torch.randn(len(positions), h, d, generator=g).to(dtype)
    sink = torch.randn(h, generator=g)
    seq = torch.tensor(seqs, dtype=torch.int32)
    pos = torch.tensor(positions, dtype=torch.int32)
    return (q, seq, pos, wp.to(dtype), wt, sink, d ** -0.5), args


def _to(dev, args, kw):
    mv = lambda x: x.to(dev) if torch.is_tensor(x) else x
    return [mv(a) for a in args], {k: mv(v) for k, v in kw.items()}


# positions straddle the window (8), the ratio, and the 128-row block boundary; ragged: 5 + 6 queries
POS = [0, 1, 7, 8, 127, 2, 3, 15, 16, 128, 139]
SEQ = [0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1]
CASES = [
    pytest.param(dict(h=4, d=48, window=8, ratio=0), id="swa-H4-D48"),
    pytest.param(dict(h=4, d=48, window=8, ratio=16), id="hca-r16-H4-D48"),
    pytest.param(dict(h=3, d=64, window=8, ratio=4, k=6), id="csa-r4-k6-H3-D64"),
    pytest.param(dict(h=20, d=32, window=5, ratio=8, k=40), id="csa-r8-k40gtN-H20-D32"),
    pytest.param(dict(h=4, d=48, window=130, ratio=32), id="hca-r32-win130"),
]


@pytest.mark.parametrize("case", CASES)
def test_triton_matches_naive_fp32(tdev, case):
    args, kw = _case(positions=POS, seqs=SEQ, all_masked=(0, 3, 9), **case)
    ref = naive_sparse_attn(*args, **kw)
    a, k = _to(tdev, args, kw)
    out = sparse_attn_triton(*a, **k)
    assert_close(ref, out, 1e-5, atol=1e-5, what="triton fp32")


@pytest.mark.parametrize("splits", [2, 7], ids=["split2", "split7-some-empty"])
@pytest.mark.parametrize("case", CASES[1:4])
def test_triton_split_kv_matches_naive(tdev, case, splits):
    """Split-KV (decode) path: partial (m, l, acc) per split merged on the host equals the single pass."""
    args, kw = _case(positions=POS, seqs=SEQ, all_masked=(0, 3, 9), **case)
    ref = naive_sparse_attn(*args, **kw)
    a, k = _to(tdev, args, kw)
    assert_close(ref, sparse_attn_triton(*a, **k, num_splits=splits), 1e-5, atol=1e-5, what=f"{splits} splits")


def test_triton_block_h_32_over_20_heads(tdev):
    args, kw = _case(h=20, d=32, window=5, ratio=8, k=40, positions=POS, seqs=SEQ)
    ref = naive_sparse_attn(*args, **kw)
    a, k = _to(tdev, args, kw)
    assert_close(ref, sparse_attn_triton(*a, **k, block_h=32), 1e-5, atol=1e-5)
    with pytest.raises(ConfigError):
        sparse_attn_triton(*a, **k, block_h=24)


@pytest.mark.parametrize("dtype,tol", [(torch.float16, 2e-3), (torch.bfloat16, 1e-2)], ids=["fp16", "bf16"])
def test_triton_matches_naive_half(tdev, dtype, tol):
    args, kw = _case(h=4, d=64, window=8, ratio=4, k=8, positions=POS, seqs=SEQ, dtype=dtype)
    ref = naive_sparse_attn(*args, **kw)
    a, k = _to(tdev, args, kw)
    out = sparse_attn_triton(*a, **k)
    assert out.dtype == dtype
    assert_close(ref, out, tol, what=f"triton {dtype}")


@pytest.mark.parametrize("case", CASES)
def test_cpu_path_matches_naive(case):
    args, kw = _case(positions=POS, seqs=SEQ, all_masked=(1,), **case)
    ref = naive_sparse_attn(*args, **kw)
    assert_close(ref, sparse_attn_torch(*args, **kw, budget_bytes=1, native=False), 1e-6, atol=1e-6, what="chunk=1")
    assert_close(ref, sparse_attn_torch(*args, **kw, budget_bytes=1), 1e-6, atol=1e-6, what="C, a query a chunk")
    assert_close(ref, sparse_attn(*args, **kw), 1e-6, atol=1e-6, what="dispatch")


@pytest.mark.parametrize("union_factor", [0.0, float("inf")], ids=["gather-per-query", "union-of-picks"])
@pytest.mark.parametrize("case", [c for c in CASES if "k" in c.values[0]])
def test_cpu_path_csa_union_and_gather(case, union_factor):
    """Both ways the CPU path reads CSA picks (one GEMM over the chunk's union, or rows gathered per query)."""
    args, kw = _case(positions=POS, seqs=SEQ, all_masked=(1,), **case)
    ref = naive_sparse_attn(*args, **kw)
    torch_only = dict(union_factor=union_factor, native=False)
    assert_close(ref, sparse_attn_torch(*args, **kw, **torch_only), 1e-6, atol=1e-6, what="csa")
    kw["topk_idxs"][:, 1] = kw["topk_idxs"][:, 0]  # a row picked twice weighs twice, as in the twin
    ref = naive_sparse_attn(*args, **kw)
    assert_close(ref, sparse_attn_torch(*args, **kw, **torch_only), 1e-6, atol=1e-6, what="twice")
    assert_close(ref, sparse_attn_torch(*args, **kw), 1e-6, atol=1e-6, what="C, twice")


@pytest.mark.parametrize("native", [False, True], ids=["torch", "C"])
@pytest.mark.parametrize("case", CASES)
def test_cpu_path_decode_queries_batched(case, native):
    """Sequences with one query each (decode) go through the batched gather path, mixed with a prefill chunk."""
    positions, seqs = [5, 127, 139, 0, 1, 2, 3, 130], [0, 1, 2, 3, 3, 3, 3, 4]
    args, kw = _case(positions=positions, seqs=seqs, all_masked=(1,), **case)
    ref = naive_sparse_attn(*args, **kw)
    assert_close(ref, sparse_attn_torch(*args, **kw, native=native), 1e-6, atol=1e-6, what="decode batch")
    assert_close(ref, sparse_attn_torch(*args, **kw, budget_bytes=1, native=native), 1e-6, atol=1e-6,
                 what="one query a chunk")


def test_naive_matches_per_query_loop():
    """The twin equals softmax over [scores…, sink] with the sink column dropped (REF sparse_attn form)."""
    args, kw = _case(h=2, d=16, window=4, ratio=4, k=3, positions=[0, 5, 13], seqs=[0, 0, 1], all_masked=(1,))
    q, seq, pos, wp, wt, sink, scale = args
    out = naive_sparse_attn(*args, **kw)
    for i in range(3):
        s, p = int(seq[i]), int(pos[i])
        rows = [wp[wt[s, j // 128], j % 128] for j in range(max(0, p - 3), p + 1)]
        rows += [kw["cmp_pool"][kw["cmp_table"][s, c // 32], c % 32] for c in kw["topk_idxs"][i].tolist() if c >= 0]
        kv = torch.stack(rows)
        for h in range(2):
            logits = torch.cat([kv @ q[i, h] * scale, sink[h:h + 1]])
            expect = logits.softmax(0)[:-1] @ kv
            torch.testing.assert_close(out[i, h], expect, rtol=1e-5, atol=1e-6)


def test_only_sink_gives_zero_and_sink_shrinks_output():
    """A query whose every logit is far below its sink outputs ~0; with sink −inf the weights sum to 1."""
    args, kw = _case(h=2, d=16, window=4, ratio=0, positions=[3], seqs=[0])
    q, seq, pos, wp, wt, sink, scale = args
    big = torch.full_like(sink, 1e4)
    assert naive_sparse_attn(q, seq, pos, wp, wt, big, scale, **kw).abs().max() < 1e-30
    same = torch.zeros(1, 2, 16)
    wp0 = wp.clone()
    wp0[wt[0, 0], :4] = 1.0                                                       # all 4 window rows equal → o = row
    o = naive_sparse_attn(same, seq, pos, wp0, wt, torch.full_like(sink, -float("inf")), scale, **kw)
    torch.testing.assert_close(o, torch.ones(1, 2, 16))


def test_bad_inputs_raise_typed_errors():
    args, kw = _case(h=2, d=16, window=4, ratio=4, k=3, positions=[5], seqs=[0])
    q, seq, pos, wp, wt, sink, scale = args
    with pytest.raises(ShapeError):
        sparse_attn(q[0], seq, pos, wp, wt, sink, scale, **kw)
    with pytest.raises(ShapeError):
        sparse_attn(q, seq.long(), pos, wp, wt, sink, scale, **kw)
    with pytest.raises(ConfigError):
        sparse_attn(q, seq, pos, wp, wt, sink, scale, **{**kw, "ratio": 3})
    with pytest.raises(ShapeError):
        sparse_attn(q, seq, pos, wp, wt, sink[:1], scale, **kw)


def _gather_case(seed=0):
    g = torch.Generator().manual_seed(seed)
    b, s, h, d, n, k = 2, 5, 3, 40, 30, 7
    idx = torch.randint(-1, n, (b, s, k), generator=g)
    idx[0, 0] = -1                                                                  # a query with no rows at all
    return torch.randn(b, s, h, d, generator=g), torch.randn(b, n, d, generator=g), torch.randn(h, generator=g), idx


def test_gather_layout_triton_and_cpu(tdev):
    """REF layout (q [b,s,h,d], kv [b,n,d], idxs [b,s,k]) through the same kernel; the CPU path chunked."""
    q, kv, sink, idx = _gather_case()
    ref = naive_sparse_attn_gather(q, kv, sink, idx, 0.2)
    assert ref[0, 0].abs().max() == 0                                               # sink only → zero output
    assert_close(ref, sparse_attn_gather_triton(q.to(tdev), kv.to(tdev), sink.to(tdev), idx.to(tdev), 0.2), 1e-6,
                 atol=1e-6)
    assert_close(ref, sparse_attn_gather_torch(q, kv, sink, idx, 0.2, budget_bytes=1), 1e-7, atol=1e-7)


def test_gather_layout_matches_ref_formula():
    """Against DeepSeek REF sparse_attn as written: softmax over [scores, sink] with the sink column dropped."""
    q, kv, sink, idx = _gather_case(1)
    out = sparse_attn_gather_torch(q, kv, sink, idx, 0.2)
    for bb, ss in ((0, 1), (1, 4)):
        rows = kv[bb, idx[bb, ss].clamp_min(0)]
        for hh in range(3):
            logits = (rows @ q[bb, ss, hh]) * 0.2
            logits = torch.cat([logits.masked_fill(idx[bb, ss] < 0, float("-inf")), sink[hh:hh + 1]])
            torch.testing.assert_close(out[bb, ss, hh], logits.softmax(0)[:-1] @ rows, rtol=1e-5, atol=1e-6)


def test_cpu_path_far_apart_queries_split_band():
    """Queries of one sequence 5000 positions apart (unsorted) go to separate chunks; results equal the twin."""
    args, kw = _case(h=2, d=16, window=4, ratio=16, positions=[5000, 2, 4999, 3], seqs=[0, 0, 0, 0])
    ref = naive_sparse_attn(*args, **kw)
    assert_close(ref, sparse_attn_torch(*args, **kw, native=False), 1e-6, atol=1e-6)
    assert_close(ref, sparse_attn_torch(*args, **kw), 1e-6, atol=1e-6, what="C")


def test_empty_batch():
    args, kw = _case(h=2, d=8, window=4, ratio=4, k=3, positions=[5], seqs=[0])
    q, seq, pos, wp, wt, sink, scale = args
    kw["topk_idxs"] = kw["topk_idxs"][:0]
    out = sparse_attn(q[:0], seq[:0], pos[:0], wp, wt, sink, scale, **kw)
    assert out.shape == (0, 2, 8)


def test_prefill_chunk_window_from_pool_at():
    """A chunk's window built by pool_at (earlier ≤127 rows + fresh rows, unaligned start) equals the full pool."""
    args, kw = _case(h=2, d=8, window=128, ratio=0, positions=[300, 301, 383, 384, 450], seqs=[0] * 5)
    q, seq, pos, wp, wt, sink, scale = args
    ref = sparse_attn(*args, **kw)
    rows = torch.stack([wp[wt[0, j // 128], j % 128] for j in range(173, 451)])     # positions 173..450
    pool, table = pool_at(rows, 173)
    assert table.shape == (1, 4) and int(table[0, 1]) == 0
    got = sparse_attn(q, seq, pos, pool, table, sink, scale, **kw)
    torch.testing.assert_close(got, ref)


def test_single_query_order_is_the_order_queries_by_sequence_gives_the_singles():
    from kernels.layout import queries_by_sequence, single_query_order

    seq = torch.tensor([5, 0, 3, 9, 1], dtype=torch.int32)   # a decode step: every query alone in its sequence
    pos = torch.tensor([40, 7, 300, 2, 81], dtype=torch.int32)
    singles = torch.cat([qi for _, qi, _ in queries_by_sequence(seq, pos)])
    assert torch.equal(single_query_order(seq), singles)
    assert single_query_order(torch.tensor([2, 0, 2], dtype=torch.int32)) is None   # a sequence with two queries
    assert single_query_order(torch.tensor([4], dtype=torch.int32)) is None         # one query: the one-sequence way
