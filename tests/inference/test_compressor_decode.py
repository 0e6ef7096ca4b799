"""Compressor.close_decode (the engine's decode step of many sequences pools the windows they close in one call) gives
the rows and the open states that close() gives each sequence alone, bit for bit."""

import torch

from inference.model.config import ModelArgs
from inference.model.model import Transformer
from inference.model.state import CompressorState
from tests.inference.configs import v4_config


def _compressors():
    torch.manual_seed(0)
    model = Transformer(ModelArgs.from_dict(v4_config()), torch.float32)
    for p in model.parameters():
        torch.nn.init.normal_(p, std=0.5)
    csa, hca = model.layers[1].attn, model.layers[2].attn
    return [csa.compressor, csa.indexer.compressor, hca.compressor]


def _state(comp, g):
    d, m = comp.head_dim, comp.ratio
    st = CompressorState.new(1, m, d, comp.overlap, "cpu")
    st.open_kv.normal_(generator=g)
    st.open_score.normal_(generator=g)
    if comp.overlap:
        st.carry_kv, st.carry_score = torch.randn(1, m, d, generator=g), torch.randn(1, m, d, generator=g)
    return st


def _clone(st):
    return CompressorState(st.ratio, st.open_kv.clone(), st.open_score.clone(),
                           None if st.carry_kv is None else st.carry_kv.clone(),
                           None if st.carry_score is None else st.carry_score.clone())


def test_close_decode_matches_close_per_sequence():
    g = torch.Generator().manual_seed(1)
    for comp in _compressors():
        m, c = comp.ratio, comp.wkv.weight.shape[0]
        # positions: windows closing (first window too), not closing, far apart (rows at very different positions)
        starts = [m - 1, 2 * m - 1, 5 * m + 1, 37 * m - 1, 4096 * m - 1, 3, 8 * m]
        states = [_state(comp, g) for _ in starts]
        kv = [torch.randn(1, 1, c, generator=g) for _ in starts]
        score = [torch.randn(1, 1, c, generator=g) for _ in starts]
        alone_states = [_clone(st) for st in states]
        alone = [comp.close(k, s, p, st, torch.float32) for k, s, p, st in zip(kv, score, starts, alone_states)]
        pooled = comp.close_decode(list(zip(kv, score, starts, states)), torch.float32)
        assert sum(r.shape[1] for r in alone) >= 4  # several windows closed in the pooled call
        for a, b, sa, sb in zip(alone, pooled, alone_states, states):
            assert a.shape == b.shape and torch.equal(a, b)
            assert torch.equal(sa.open_kv, sb.open_kv) and torch.equal(sa.open_score, sb.open_score)
            if comp.overlap:
                assert torch.equal(sa.carry_kv, sb.carry_kv) and torch.equal(sa.carry_score, sb.carry_score)


def test_close_decode_rows_matches_close_per_sequence():
    """The engine's decode step: projections stacked [n, c], open windows written in one copy, the closing windows
    built as one batch (first windows, without a carry, among them) and the carries updated in place."""
    g = torch.Generator().manual_seed(2)
    for comp in _compressors():
        m, c = comp.ratio, comp.wkv.weight.shape[0]
        for starts in ([m - 1, 2 * m - 1, 5 * m + 1, 37 * m - 1, 4096 * m - 1, 3, 8 * m],  # some close, a first
                       [2 * m - 1, 9 * m - 1],  # all close, none a first window
                       [m + 1, 3 * m, 7 * m + 2]):  # none closes
            states = [_state(comp, g) for _ in starts]
            kv, score = torch.randn(len(starts), c, generator=g), torch.randn(len(starts), c, generator=g)
            alone_states = [_clone(st) for st in states]
            alone = [comp.close(kv[i : i + 1, None], score[i : i + 1, None], p, st, torch.float32)
                     for i, (p, st) in enumerate(zip(starts, alone_states))]
            carries = [st.carry_kv for st in states]
            idx, rows = comp.close_decode_rows(kv, score, starts, states, torch.float32)
            assert idx == [i for i, r in enumerate(alone) if r.shape[1]]
            if idx:
                assert torch.equal(rows, torch.cat([alone[i][0] for i in idx]))
            else:
                assert rows is None
            for sa, sb, carry in zip(alone_states, states, carries):
                assert torch.equal(sa.open_kv, sb.open_kv) and torch.equal(sa.open_score, sb.open_score)
                if comp.overlap:
                    assert sb.carry_kv is carry  # updated in place
                    assert torch.equal(sa.carry_kv, sb.carry_kv) and torch.equal(sa.carry_score, sb.carry_score)
