"""kernels.cpu_attention: the C sparse attention of the CPU path (each query over its own rows, in place)."""

import shutil

import pytest
import torch

from kernels import cpu_attention
from kernels import sparse_attn as K_ATTN
from kernels.layout import BLOCK_TOKENS, pool_from_rows, rows_per_block

HAVE_CC = bool(shutil.which("cc") or shutil.which("gcc"))


def _reference(q, a, ia, b, ib, sink, scale):
    """float64: softmax over each query's rows with the sink logit in the denominator, K = V."""
    rows, valid = [a[ia.long().clamp_min(0)]], [ia >= 0]
    if ib is not None:
        rows.append(b[ib.long().clamp_min(0)])
        valid.append(ib >= 0)
    kv, ok = torch.cat(rows, 1).double(), torch.cat(valid, 1)
    s = (torch.einsum("thd,tnd->thn", q.double(), kv) * scale).masked_fill(~ok[:, None], float("-inf"))
    m = torch.maximum(s.amax(-1), sink.double()[None])
    e = torch.exp(s - m[..., None])
    return torch.einsum("thn,tnd->thd", e / (e.sum(-1) + torch.exp(sink.double() - m))[..., None], kv)


def test_this_machine_builds_it():
    # CI and this machine have a compiler and AVX-512: the C path must be the one that runs
    assert HAVE_CC and cpu_attention.available()


@pytest.mark.parametrize("h,d", [(8, 128), (16, 64), (3, 32), (13, 16)])
def test_matches_float64(h, d):
    """Head counts on and off the 8-lane groups; rows from both pools, repeated rows, −1 holes, a query with no
    rows at all (its output is 0: only the sink is left), rows not a multiple of the 8-row score tiles."""
    g = torch.Generator().manual_seed(h * d)
    a, b = torch.randn(300, d, generator=g), torch.randn(90, d, generator=g)
    q, sink = torch.randn(21, h, d, generator=g), torch.randn(h, generator=g)
    ia = torch.randint(-1, 300, (21, 29), generator=g, dtype=torch.int32)
    ib = torch.randint(-1, 90, (21, 13), generator=g, dtype=torch.int32)
    ia[4], ib[4] = -1, -1
    ib[5, :3] = 7
    out = cpu_attention.attend(q, a, ia, b, ib, sink, d ** -0.5)
    assert out is not None and out.shape == (21, h, d) and out.dtype == torch.float32
    torch.testing.assert_close(out.double(), _reference(q, a, ia, b, ib, sink, d ** -0.5), rtol=1e-5, atol=1e-6)
    assert torch.equal(out[4], torch.zeros(h, d))
    one = cpu_attention.attend(q, a, ia, None, None, sink, 0.3)                    # window rows only (SWA)
    torch.testing.assert_close(one.double(), _reference(q, a, ia, None, None, sink, 0.3), rtol=1e-5, atol=5e-6)


def test_large_logits_and_thread_count_do_not_change_it():
    """Scores in the hundreds (the softmax's max shift) and 1 vs 2 threads: same result, bit for bit across
    threads (each query is computed by one thread)."""
    g = torch.Generator().manual_seed(1)
    a = torch.randn(200, 64, generator=g) * 4
    q, sink = torch.randn(40, 8, 64, generator=g) * 4, torch.randn(8, generator=g)
    ia = torch.randint(0, 200, (40, 150), generator=g, dtype=torch.int32)
    out = cpu_attention.attend(q, a, ia, None, None, sink, 1.0)
    ref = _reference(q, a, ia, None, None, sink, 1.0)
    kv = a[ia.long()]                                              # torch in fp32: the rounding fp32 allows here
    s = torch.cat([torch.einsum("thd,tnd->thn", q, kv), sink[None, :, None].expand(40, 8, 1)], -1).softmax(-1)
    fp32 = torch.einsum("thn,tnd->thd", s[..., :-1], kv)
    assert (out.double() - ref).abs().max() <= 4 * (fp32.double() - ref).abs().max() + 1e-6
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        assert torch.equal(cpu_attention.attend(q, a, ia, None, None, sink, 1.0), out)
    finally:
        torch.set_num_threads(threads)


def test_what_it_does_not_take():
    q, a, ia = torch.randn(2, 8, 24), torch.randn(5, 24), torch.zeros(2, 3, dtype=torch.int32)
    assert not cpu_attention.applies(q)                                            # D not a multiple of 16
    assert cpu_attention.attend(q, a, ia, None, None, torch.zeros(8), 1.0) is None
    assert not cpu_attention.applies(torch.randn(2, 8, 32).bfloat16())            # bf16: the torch path runs


def test_sparse_attn_torch_runs_it(monkeypatch):
    """The CPU entry point hands every kind (SWA, HCA, CSA) to the C loop, reading the paged pools in place."""
    calls = []
    real = cpu_attention.attend
    monkeypatch.setattr(cpu_attention, "attend", lambda *a: calls.append(a[0].shape[0]) or real(*a))
    g = torch.Generator().manual_seed(4)
    raw, cmp = torch.randn(2, 600, 32, generator=g), torch.randn(2, 150, 32, generator=g)
    wp, wt = pool_from_rows(raw, BLOCK_TOKENS, shuffle=True, seed=4)
    cp, ct = pool_from_rows(cmp, rows_per_block(4), shuffle=True, seed=5)
    pos = torch.tensor([599, 300, 301, 302, 5], dtype=torch.int32)
    seq = torch.tensor([0, 1, 1, 1, 0], dtype=torch.int32)
    q, sink = torch.randn(5, 8, 32, generator=g), torch.randn(8, generator=g)
    picks = torch.stack([torch.randperm((int(p) + 1) // 4, generator=g)[:6] for p in pos[:4]]).to(torch.int32)
    picks = torch.cat([picks, torch.full((1, 6), -1, dtype=torch.int32)])         # position 5: no picks
    for kw in ({}, dict(cmp_pool=cp, cmp_table=ct, ratio=4), dict(cmp_pool=cp, cmp_table=ct, ratio=4,
                                                                   topk_idxs=picks)):
        args = (q, seq, pos, wp, wt, sink, 0.2, 16)
        calls.clear()
        got = K_ATTN.sparse_attn_torch(*args, **kw)
        assert calls == [5]
        torch.testing.assert_close(got, K_ATTN.naive_sparse_attn(*args, **kw), rtol=1e-5, atol=1e-6)
