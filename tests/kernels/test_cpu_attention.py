"""kernels.cpu_attention: the C sparse attention of the CPU path (each query over its own rows, read in place)."""

import shutil

import pytest
import torch

from kernels import cpu_attention
from kernels import sparse_attn as K_ATTN
from kernels.errors import ShapeError
from kernels.layout import BLOCK_TOKENS, gather_rows, pool_from_rows, rows_per_block

HAVE_CC = bool(shutil.which("cc") or shutil.which("gcc"))


def _case(h, d, ratio, k, positions, seqs, seed, window=16, scale_up=1.0):
    """Paged pools with shuffled block tables (two sequences); CSA picks are visible rows, some −1 or repeated."""
    g = torch.Generator().manual_seed(seed)
    n_seq, length = max(seqs) + 1, max(positions) + 1
    wp, wt = pool_from_rows(torch.randn(n_seq, length, d, generator=g) * scale_up, BLOCK_TOKENS, True, seed)
    kw = {}
    if ratio:
        cmp = torch.randn(n_seq, max(1, length // ratio), d, generator=g) * scale_up
        cp, ct = pool_from_rows(cmp, rows_per_block(ratio), True, seed + 1)
        kw = dict(cmp_pool=cp, cmp_table=ct, ratio=ratio)
        if k:
            tk = torch.full((len(positions), k), -1, dtype=torch.int32)
            for i, p in enumerate(positions):
                picks = torch.randint(0, max(1, (p + 1) // ratio + 3), (k,), generator=g)   # a few not visible yet
                tk[i] = torch.where(torch.rand(k, generator=g) < 0.1, -1, picks).to(torch.int32)
            kw["topk_idxs"] = tk
    q = torch.randn(len(positions), h, d, generator=g) * scale_up
    args = (q, torch.tensor(seqs, dtype=torch.int32), torch.tensor(positions, dtype=torch.int32), wp, wt,
            torch.randn(h, generator=g), d ** -0.5, window)
    return args, kw


def _reference(q, seq, pos, wp, wt, sink, scale, window, cmp_pool=None, cmp_table=None, ratio=0, topk_idxs=None):
    """float64 twin: softmax over each query's rows with the sink logit in the denominator, K = V."""
    s64 = seq.long()[:, None]
    idx = [K_ATTN._window_rows(pos, window)]
    rows = [gather_rows(wp.double(), wt, s64, idx[0])]
    if ratio:
        cidx = topk_idxs.long() if topk_idxs is not None else K_ATTN._visible_rows(pos, ratio)
        idx.append(torch.where(cidx < ((pos.long() + 1) // ratio)[:, None], cidx, -1))
        rows.append(gather_rows(cmp_pool.double(), cmp_table, s64, idx[1]))
    kv, ok = torch.cat(rows, 1), torch.cat(idx, 1) >= 0
    s = (torch.einsum("thd,tnd->thn", q.double(), kv) * scale).masked_fill(~ok[:, None], float("-inf"))
    m = torch.maximum(s.amax(-1), sink.double()[None])
    e = torch.exp(s - m[..., None])
    return torch.einsum("thn,tnd->thd", e / (e.sum(-1) + torch.exp(sink.double() - m))[..., None], kv)


def test_this_machine_builds_it():
    # CI and this machine have a compiler and AVX-512: the C path must be the one that runs
    assert HAVE_CC and cpu_attention.available()


POS, SEQ = [0, 3, 15, 16, 127, 128, 300, 5, 200, 201], [0, 0, 0, 0, 0, 0, 0, 1, 1, 1]


@pytest.mark.parametrize("h,d", [(8, 128), (16, 64), (3, 32), (13, 16)])
@pytest.mark.parametrize("ratio,k", [(0, 0), (4, 7), (4, 40), (16, 0)], ids=["swa", "csa-k7", "csa-k40", "hca"])
def test_matches_float64(h, d, ratio, k):
    """Head counts on and off the 8-lane groups, every attention kind, window rows before position 0, picks that
    are −1, repeated or not yet visible, rows not a multiple of the 8-row score tiles; ragged sequences."""
    args, kw = _case(h, d, ratio, k, POS, SEQ, seed=h * d + ratio + k)
    out = cpu_attention.attend(*args, **kw)
    assert out is not None and out.shape == (len(POS), h, d) and out.dtype == torch.float32
    torch.testing.assert_close(out.double(), _reference(*args, **kw), rtol=1e-5, atol=5e-6)


def test_window_of_one_row_and_no_picks():
    """Window 1 and every pick −1: the query's own row against the sink only."""
    args, kw = _case(8, 32, 4, 5, [40, 41], [0, 0], seed=3)
    kw["topk_idxs"][:] = -1
    q, seq, pos, wp, wt, sink, scale, _ = args
    out = cpu_attention.attend(q, seq, pos, wp, wt, sink, scale, 1, **kw)
    torch.testing.assert_close(out.double(), _reference(q, seq, pos, wp, wt, sink, scale, 1, **kw))


def test_large_logits_and_thread_count_do_not_change_it():
    """Logits in the hundreds (the softmax's max shift) are within the error fp32 itself makes; 1 vs 2 threads are
    bit for bit the same (each query is computed by one thread)."""
    args, kw = _case(8, 64, 4, 64, list(range(200, 260)), [0] * 60, seed=1, scale_up=3.0)
    out = cpu_attention.attend(*args, **kw)
    ref = _reference(*args, **kw)
    fp32 = K_ATTN.naive_sparse_attn(*args[:5], args[5], args[6], args[7], **kw)    # torch in fp32
    assert (out.double() - ref).abs().max() <= 4 * (fp32.double() - ref).abs().max() + 1e-6
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        assert torch.equal(cpu_attention.attend(*args, **kw), out)
    finally:
        torch.set_num_threads(threads)


def test_what_it_does_not_take():
    args, kw = _case(8, 24, 0, 0, [3, 4], [0, 0], seed=2)
    assert not cpu_attention.applies(args[0])                                       # D not a multiple of 16
    assert cpu_attention.attend(*args, **kw) is None
    assert not cpu_attention.applies(torch.randn(2, 8, 32).bfloat16())            # bf16: the torch path runs


def test_sparse_attn_torch_runs_it(monkeypatch):
    """The CPU entry point hands every kind (SWA, HCA, CSA) to the C loop."""
    calls = []
    real = cpu_attention.attend
    monkeypatch.setattr(cpu_attention, "attend", lambda *a: calls.append(a[0].shape[0]) or real(*a))
    for ratio, k in ((0, 0), (4, 0), (4, 6)):
        args, kw = _case(8, 32, ratio, k, POS, SEQ, seed=4)
        calls.clear()
        got = K_ATTN.sparse_attn_torch(*args, **kw)
        assert calls == [len(POS)]
        torch.testing.assert_close(got, K_ATTN.naive_sparse_attn(*args, **kw), rtol=1e-5, atol=1e-6)


def test_a_bad_block_table_is_an_error_not_a_stray_read():
    """Rows the C loop would read outside the pool (a table entry past it or −1, a position past the table, a
    pick in a block that points nowhere) raise a ShapeError; nothing is read."""
    args, kw = _case(8, 32, 4, 6, POS, SEQ, seed=5)
    q, seq, pos, wp, wt, sink, scale, window = args
    bad = wt.clone()
    bad[0, 0] = wp.shape[0]                                                    # a window block past the pool
    with pytest.raises(ShapeError, match="outside its block table"):
        cpu_attention.attend(q, seq, pos, wp, bad, sink, scale, window, **kw)
    bad[0, 0] = -1
    with pytest.raises(ShapeError, match="outside its block table"):
        cpu_attention.attend(q, seq, pos, wp, bad, sink, scale, window, **kw)
    far = pos.clone()
    far[0] = wt.shape[1] * BLOCK_TOKENS                                        # past the table's last block
    with pytest.raises(ShapeError):
        cpu_attention.attend(q, seq, far, wp, wt, sink, scale, window, **kw)
    kw["cmp_table"] = kw["cmp_table"].clone()
    kw["cmp_table"][0, 0] = 10 ** 6                                             # where the picks of sequence 0 lie
    with pytest.raises(ShapeError):
        cpu_attention.attend(q, seq, pos, wp, wt, sink, scale, window, **kw)
