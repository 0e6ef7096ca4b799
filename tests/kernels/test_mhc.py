"""mHC: fused Triton hc_pre / hc_post vs the twins; the twins vs explicit per-token loops and Sinkhorn properties."""

import pytest
import torch

from kernels.mhc import (
    hc_post,
    hc_post_triton,
    hc_pre,
    hc_pre_triton,
    hc_split_sinkhorn,
    hc_split_sinkhorn_torch,
    hc_split_sinkhorn_triton,
    naive_hc_post,
    naive_hc_pre,
    naive_hc_split_sinkhorn,
    sinkhorn_torch_,
)
from tests.kernels.conftest import assert_close


def _case(t, hc, d, seed=0):
    g = torch.Generator().manual_seed(seed)
    mix = (2 + hc) * hc
    return (torch.randn(t, hc, d, generator=g), torch.randn(mix, hc * d, generator=g) * 0.1,
            torch.rand(3, generator=g) + 0.5, torch.randn(mix, generator=g))


@pytest.mark.parametrize("t,hc,d", [(3, 4, 40), (2, 2, 24), (2, 4, 1100)], ids=["hc4-d40", "hc2-d24", "hc4-d1100"])
def test_triton_matches_naive(tdev, t, hc, d):
    x, fn, sc, base = _case(t, hc, d)
    kw = dict(iters=20, norm_eps=1e-6, hc_eps=1e-6)
    ref = naive_hc_pre(x, fn, sc, base, **kw)
    out = hc_pre_triton(x.to(tdev), fn.to(tdev), sc.to(tdev), base.to(tdev), **kw)
    for name, r, o in zip(("y", "post", "comb"), ref, out):
        assert_close(r, o, 1e-5, atol=1e-6, what=name)
    f = torch.randn(t, d)
    assert_close(naive_hc_post(f, x, ref[1], ref[2]),
                 hc_post_triton(f.to(tdev), x.to(tdev), ref[1].to(tdev), ref[2].to(tdev)), 1e-6, atol=1e-6)


@pytest.mark.parametrize("t,hc,d", [(3, 4, 40), (2, 2, 24), (5, 4, 1100)], ids=["hc4-d40", "hc2-d24", "hc4-d1100"])
def test_cpu_path_matches_naive(t, hc, d):
    """The CPU path (tokens-last Sinkhorn, bmm reduction, fused multiply-adds) against the twins."""
    x, fn, sc, base = _case(t, hc, d)
    kw = dict(iters=20, norm_eps=1e-6, hc_eps=1e-6)
    ref = naive_hc_pre(x, fn, sc, base, **kw)
    for name, r, o in zip(("y", "post", "comb"), ref, hc_pre(x, fn, sc, base, **kw)):
        assert_close(r, o, 1e-5, atol=1e-6, what=name)
    mixes = torch.randn(t, (2 + hc) * hc)
    for r, o in zip(naive_hc_split_sinkhorn(mixes, sc, base, hc, 20, 1e-6),
                    hc_split_sinkhorn_torch(mixes, sc, base, hc, 20, 1e-6)):
        assert_close(r, o, 1e-6, atol=1e-7, what="split")
    f = torch.randn(t, d)
    assert_close(naive_hc_post(f, x, ref[1], ref[2]), hc_post(f, x, ref[1], ref[2]), 1e-6, atol=1e-6)


def test_naive_semantics():
    x, fn, sc, base = _case(2, 4, 8)
    y, post, comb = hc_pre(x, fn, sc, base, iters=20, norm_eps=1e-6, hc_eps=1e-6)
    torch.testing.assert_close(comb.sum(-2), torch.ones(2, 4), atol=1e-5, rtol=0)     # columns normalized last
    torch.testing.assert_close(comb.sum(-1), torch.ones(2, 4), atol=1e-3, rtol=0)     # ~doubly stochastic
    assert ((post > 0) & (post < 2)).all()
    v = x[0].flatten()
    mixes = fn @ v / torch.sqrt(v.pow(2).mean() + 1e-6)
    pre0 = torch.sigmoid(mixes[:4] * sc[0] + base[:4]) + 1e-6
    torch.testing.assert_close(y[0], (pre0[:, None] * x[0]).sum(0), rtol=1e-5, atol=1e-6)
    f = torch.randn(2, 8)
    out = hc_post(f, x, post, comb)
    k, tkn = 2, 1
    expect = post[tkn, k] * f[tkn] + sum(comb[tkn, j, k] * x[tkn, j] for j in range(4))
    torch.testing.assert_close(out[tkn, k], expect, rtol=1e-5, atol=1e-6)


def test_split_sinkhorn_triton(tdev):
    g = torch.Generator().manual_seed(3)
    mixes, sc, base = torch.randn(5, 24, generator=g), torch.rand(3, generator=g) + 0.5, torch.randn(24, generator=g)
    ref = hc_split_sinkhorn(mixes, sc, base, 4, 20, 1e-6)
    out = hc_split_sinkhorn_triton(mixes.to(tdev), sc.to(tdev), base.to(tdev), 4, 20, 1e-6)
    for r, o in zip(ref, out):
        assert_close(r, o, 1e-6, atol=1e-6)


@pytest.mark.parametrize("hc", [1, 2, 3, 4])
@pytest.mark.parametrize("t", [1, 3, 16, 17, 300])
def test_native_sinkhorn_is_bit_identical_to_the_torch_loop(hc, t):
    import shutil

    from kernels import cpu_native

    g = torch.Generator().manual_seed(hc * 1000 + t)
    comb = (torch.randn(hc, hc, t, generator=g) * 3).softmax(1).add_(1e-6)
    ref = sinkhorn_torch_(comb.clone(), 20, 1e-6)  # the fallback hc_split_sinkhorn_torch ships
    out = comb.clone()
    if shutil.which("cc") or shutil.which("gcc"):  # this machine (and CI) can build it: the C path must run
        assert cpu_native.available()
        assert cpu_native.sinkhorn_(out, 20, 1e-6)
        assert torch.equal(out, ref)
        assert not torch.equal(out, comb)
    else:  # no compiler: the caller keeps the torch loop, comb untouched
        assert not cpu_native.sinkhorn_(out, 20, 1e-6) and torch.equal(out, comb)
    # what does not qualify falls back untouched: hc > 4 (torch's sums stop adding in sequence), other dtypes
    for other in (torch.rand(5, 5, t), comb.double()):
        before = other.clone()
        assert not cpu_native.sinkhorn_(other, 20, 1e-6) and torch.equal(other, before)


def test_split_with_native_sinkhorn_matches_the_naive_split():
    g = torch.Generator().manual_seed(5)
    for t in (1, 7, 64):
        mixes, base = torch.randn(t, 24, generator=g), torch.randn(24, generator=g)
        sc = torch.rand(3, generator=g) + 0.5
        ref = naive_hc_split_sinkhorn(mixes, sc, base, 4, 20, 1e-6)
        out = hc_split_sinkhorn_torch(mixes, sc, base, 4, 20, 1e-6)
        for r, o in zip(ref, out):
            assert_close(r, o, 1e-5, atol=1e-6)
