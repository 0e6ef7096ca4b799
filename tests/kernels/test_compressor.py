"""Compressor: Triton / CPU path vs the naive twin; the twin vs a REF-style whole-prefill transcription;
incremental decode (open state) equals one-shot prefill."""

import pytest
import torch

from kernels.compressor import (
    compressor,
    compressor_torch,
    compressor_triton,
    naive_compressor,
    open_state_start,
    write_rows,
)
from kernels.errors import ConfigError
from kernels.layout import pool_from_rows, rope_tables, sequence_rows
from tests.kernels.conftest import assert_close

D, RD = 48, 16


def _weights(ratio, overlap, seed=0):
    g = torch.Generator().manual_seed(seed)
    coff = 2 if overlap else 1
    cos, sin = rope_tables(RD, 512)
    return torch.randn(ratio, coff * D, generator=g), torch.rand(D, generator=g) + 0.5, cos, sin


def _tokens(n, ratio, overlap, seed=1):
    g = torch.Generator().manual_seed(seed)
    coff = 2 if overlap else 1
    return torch.randn(n, coff * D, generator=g), 2 * torch.randn(n, coff * D, generator=g)


def _ref_prefill(kv, score, ape, nw, cos, sin, ratio, overlap, eps=1e-6):
    """REF Compressor.forward at start_pos=0 (unflatten into windows, overlap_transform, softmax over slots)."""
    n = kv.shape[0] // ratio * ratio
    c = kv[:n].unflatten(0, (-1, ratio))
    z = score[:n].unflatten(0, (-1, ratio)) + ape
    if overlap:
        w = c.shape[0]
        c2 = c.new_zeros(w, 2 * ratio, D)
        z2 = z.new_full((w, 2 * ratio, D), float("-inf"))
        c2[:, ratio:], z2[:, ratio:] = c[:, :, D:], z[:, :, D:]
        c2[1:, :ratio], z2[1:, :ratio] = c[:-1, :, :D], z[:-1, :, :D]
        c, z = c2, z2
    x = (c * z.softmax(1)).sum(1)
    x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * nw
    xc = torch.view_as_complex(x[:, -RD:].unflatten(-1, (-1, 2)).contiguous())
    ang = torch.polar(torch.ones_like(cos), torch.atan2(sin, cos))[torch.arange(x.shape[0]) * ratio]
    return torch.cat([x[:, :-RD], torch.view_as_real(xc * ang).flatten(-2)], -1)


RATIOS = [pytest.param(4, True, id="csa-r4"), pytest.param(8, False, id="hca-r8"),
          pytest.param(16, False, id="hca-r16"), pytest.param(4, False, id="r4-no-overlap")]


@pytest.mark.parametrize("ratio,overlap", RATIOS)
def test_naive_matches_ref_prefill(ratio, overlap):
    ape, nw, cos, sin = _weights(ratio, overlap)
    kv, sc = _tokens(5 * ratio + 3, ratio, overlap)
    rows, seqs, wins = naive_compressor(kv, sc, ape, nw, cos, sin, torch.tensor([0, kv.shape[0]]), torch.tensor([0]),
                                        torch.tensor([0]), ratio=ratio, overlap=overlap, rope_dim=RD)
    assert wins.tolist() == list(range(5))
    assert_close(_ref_prefill(kv, sc, ape, nw, cos, sin, ratio, overlap), rows, 1e-6, atol=1e-5)


def _ragged(ratio, overlap):
    """Three buffers: a prefill from 0 (not a window multiple), one shorter than a window, one resuming mid-stream."""
    lens = [5 * ratio + 1, ratio - 1, 3 * ratio]
    start = [0, 0, 4 * ratio]
    first = [0, 0, 5 if overlap else 4]                      # resuming buffer begins with the carry window 4
    cu = torch.tensor([0, *torch.tensor(lens).cumsum(0).tolist()])
    kv, sc = _tokens(sum(lens), ratio, overlap)
    return kv, sc, cu, torch.tensor(start), torch.tensor(first)


@pytest.mark.parametrize("ratio,overlap", RATIOS)
def test_triton_and_cpu_match_naive(tdev, ratio, overlap):
    ape, nw, cos, sin = _weights(ratio, overlap)
    kv, sc, cu, start, first = _ragged(ratio, overlap)
    kw = dict(ratio=ratio, overlap=overlap, rope_dim=RD)
    ref = naive_compressor(kv, sc, ape, nw, cos, sin, cu, start, first, **kw)
    expect_wins = list(range(5)) + ([5, 6] if overlap else [4, 5, 6])
    assert ref[2].tolist() == expect_wins and ref[1].tolist() == [0] * 5 + [2] * (len(expect_wins) - 5)
    out = compressor_triton(*[x.to(tdev) for x in (kv, sc, ape, nw, cos, sin, cu, start, first)], **kw)
    assert_close(ref[0], out[0], 1e-5, atol=2e-5, what="triton")
    assert torch.equal(out[2].cpu(), ref[2]) and torch.equal(out[1].cpu(), ref[1])
    cpu = compressor_torch(kv, sc, ape, nw, cos, sin, cu, start, first, **kw, budget_bytes=1)
    assert_close(ref[0], cpu[0], 1e-6, atol=1e-5, what="cpu")


def test_triton_bf16_projections(tdev):
    """bf16 kv / gate projections (as a bf16 model produces them) pool in fp32 inside the kernel."""
    ape, nw, cos, sin = _weights(4, True)
    kv, sc, cu, start, first = _ragged(4, True)
    kv, sc = kv.bfloat16(), sc.bfloat16()
    kw = dict(ratio=4, overlap=True, rope_dim=RD)
    ref = naive_compressor(kv, sc, ape, nw, cos, sin, cu, start, first, **kw)[0]
    out = compressor_triton(*[x.to(tdev) for x in (kv, sc, ape, nw, cos, sin, cu, start, first)], **kw)[0]
    assert_close(ref, out, 1e-5, atol=2e-5)


@pytest.mark.parametrize("ratio,overlap", [pytest.param(4, True, id="csa-r4"), pytest.param(8, False, id="hca-r8")])
def test_decode_token_by_token_equals_prefill(ratio, overlap):
    """Feeding tokens one at a time through the open state (carry + partial window) closes the same rows."""
    ape, nw, cos, sin = _weights(ratio, overlap)
    n = 6 * ratio + 2
    kv, sc = _tokens(n, ratio, overlap)
    kw = dict(ratio=ratio, overlap=overlap, rope_dim=RD)
    t1 = lambda v: torch.tensor([v])
    full = compressor(kv, sc, ape, nw, cos, sin, torch.tensor([0, n]), t1(0), t1(0), **kw)[0]
    rows = []
    for p in range(n):
        s0 = open_state_start(p, ratio, overlap)            # state kept after positions < p were processed
        buf = slice(s0, p + 1)
        got = compressor(kv[buf], sc[buf], ape, nw, cos, sin, torch.tensor([0, p + 1 - s0]), t1(s0),
                         t1(p // ratio), **kw)
        assert got[0].shape[0] == int((p + 1) % ratio == 0)
        rows.append(got[0])
    assert_close(full, torch.cat(rows), 1e-6, atol=1e-6)


def test_rope_offset_table_equals_full_table(tdev):
    """A cos/sin slice starting at rope_offset (table row = position − offset) gives the full-table rows, all paths."""
    ape, nw, cos, sin = _weights(4, True)
    kv, sc, cu, start, first = _ragged(4, True)
    kw = dict(ratio=4, overlap=True, rope_dim=RD)
    full = naive_compressor(kv, sc, ape, nw, cos, sin, cu, start, first, **kw)[0]
    wins = naive_compressor(kv, sc, ape, nw, cos, sin, cu, start, first, **kw)[2]
    off = int(wins.min()) * 4
    cs, sn = cos[off:int(wins.max()) * 4 + 1].clone(), sin[off:int(wins.max()) * 4 + 1].clone()
    assert off == 0 or not torch.equal(cs[:1], cos[:1])
    args = (kv, sc, ape, nw, cs, sn, cu, start, first)
    for fn in (naive_compressor, compressor_torch, compressor):
        torch.testing.assert_close(fn(*args, **kw, rope_offset=off)[0], full, rtol=0, atol=1e-6)
    out = compressor_triton(*[x.to(tdev) for x in args], **kw, rope_offset=off)[0]
    assert_close(full, out, 1e-5, atol=2e-5, what="triton offset")
    # a late slice (only the last sequence's rows): offset > 0 really shifts the table rows
    k0 = int(cu[2])
    cu2 = torch.tensor([0, int(cu[3]) - k0])
    sub = naive_compressor(kv[k0:], sc[k0:], ape, nw, cos, sin, cu2, start[2:], first[2:], **kw)
    off2 = int(sub[2].min()) * 4
    assert off2 > 0
    late = (kv[k0:], sc[k0:], ape, nw, cos[off2:].clone(), sin[off2:].clone(), cu2, start[2:], first[2:])
    torch.testing.assert_close(compressor_torch(*late, **kw, rope_offset=off2)[0], sub[0], rtol=0, atol=1e-6)
    out2 = compressor_triton(*[x.to(tdev) for x in late], **kw, rope_offset=off2)[0]
    assert_close(sub[0], out2, 1e-5, atol=2e-5, what="triton late offset")
    with pytest.raises(ConfigError):  # table doesn't reach back to the first emitted row
        compressor_torch(*late[:4], cos[off2 + 4:], sin[off2 + 4:], *late[6:], **kw, rope_offset=off2 + 4)


def test_write_rows_through_block_table():
    ape, nw, cos, sin = _weights(4, True)
    kv, sc, cu, start, first = _ragged(4, True)
    rows, seqs, wins = compressor(kv, sc, ape, nw, cos, sin, cu, start, first, ratio=4, overlap=True, rope_dim=RD)
    pool, table = pool_from_rows(torch.zeros(3, 64, D), 32, shuffle=True)
    write_rows(pool, table, seqs, wins, rows, 4)
    got = sequence_rows(pool, table[2], 7)
    torch.testing.assert_close(got[5:7], rows[seqs == 2])
    assert got[:5].abs().sum() == 0


def test_bad_inputs():
    ape, nw, cos, sin = _weights(4, True)
    kv, sc = _tokens(12, 4, True)
    kw = dict(overlap=True, rope_dim=RD)
    cu, z = torch.tensor([0, 12]), torch.tensor([0])
    with pytest.raises(ConfigError):
        compressor(kv, sc, ape, nw, cos, sin, cu, torch.tensor([2]), z, ratio=4, **kw)    # start not window-aligned
    with pytest.raises(ConfigError):
        compressor(kv, sc, ape, nw, cos, sin, cu, torch.tensor([4]), torch.tensor([1]), ratio=4, **kw)  # no carry
    with pytest.raises(ConfigError):
        compressor(kv, sc, ape[:3], nw, cos, sin, cu, z, z, ratio=3, **kw)
