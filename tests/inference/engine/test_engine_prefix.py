"""Prefix-cache hits give exactly the greedy tokens of a cold run (fp32, tie-free config), via checkpoints and via
the recompute fallback, at prefix lengths that end on and inside a block; shared blocks are never written."""

import pytest
import torch

from inference.model.decode import generate
from tests.inference.engine.engine_helpers import make_engine, random_ids, run_all

DOC = random_ids(900, seed=1)  # 7 full blocks + 4 tokens
Q1, Q2, Q3 = random_ids(20, 2), random_ids(33, 3), random_ids(7, 4)


_COLD: dict[tuple, list[int]] = {}


def cold(model, ids: list[int], n: int = 5) -> list[int]:
    """Greedy tokens of inference.generate's plain incremental decode (no engine), memoised across tests."""
    key = (tuple(ids), n)
    if key not in _COLD:
        _COLD[key] = generate(model, ids, n)[0]
    return _COLD[key]


@pytest.mark.slow
def test_checkpoint_hits_resume_without_recompute(model):
    eng = make_engine(model, checkpoint_every_blocks=2)
    first = run_all(eng, {"a": DOC + Q1})["a"]
    assert first[1].cached_tokens == 0 and first[0] == cold(model, DOC + Q1)
    # whole document cached: the checkpoint at the end of its last full block (896)
    assert eng.probe(DOC + Q2) == 896
    got = run_all(eng, {"b": DOC + Q2})["b"]
    assert got[1].cached_tokens == 896
    assert got[0] == cold(model, DOC + Q2)
    # a prefix ending inside block 5 (650 tokens): hits blocks 0-4, resumes at the every-2-blocks checkpoint (512)
    mid = DOC[:650] + Q3
    got = run_all(eng, {"c": mid})["c"]
    assert got[1].cached_tokens == 512
    assert got[0] == cold(model, mid)
    st = eng.stats()
    assert (st.prefix_hit_tokens, st.prefix_query_tokens) == (896 + 512, len(DOC + Q1) + len(DOC + Q2) + len(mid))
    assert st.prefill_tokens == len(DOC + Q1) + len(Q2) + 4 + (650 - 512) + len(Q3)


@pytest.mark.slow
def test_recompute_fallback_is_exact_and_reads_shared_blocks_only(model):
    eng = make_engine(model, num_checkpoints=0)
    run_all(eng, {"a": DOC + Q1})
    hit_blocks = eng.blocks.match(DOC, 7)[0]
    assert len(hit_blocks) == 7
    before = [r[hit_blocks].clone() for r in eng.pools.rows if r is not None]
    # 7 hit blocks, L = 4 layers: recompute positions [384, 896), so 384 cached tokens
    assert eng.probe(DOC + Q2) == 384
    got = run_all(eng, {"b": DOC + Q2})["b"]
    assert got[1].cached_tokens == 384
    assert got[0] == cold(model, DOC + Q2)
    after = [r[hit_blocks] for r in eng.pools.rows if r is not None]
    assert all(torch.equal(x, y) for x, y in zip(before, after))
    # mid-block prefix (700 tokens): 5 hit blocks, recompute [128, 640)
    mid = DOC[:700] + Q3
    got = run_all(eng, {"c": mid})["c"]
    assert got[1].cached_tokens == 128
    assert got[0] == cold(model, mid)


def test_one_block_prefix_hits_and_short_prefix_misses(model):
    eng = make_engine(model)
    run_all(eng, {"a": DOC[:130]}, max_tokens=1)  # its last full block ends at 128: checkpoint there
    one = DOC[:128] + Q1
    assert eng.probe(one) == 128
    assert eng.probe(DOC[:127] + Q1) == 0
    assert eng.probe(DOC[:128]) == 0  # the last prompt token is always computed (its logits are needed)
    got = run_all(eng, {"b": one})["b"]
    assert got[1].cached_tokens == 128 and got[0] == cold(model, one)


@pytest.mark.slow
def test_no_checkpoint_is_taken_while_a_recompute_is_still_inexact(model):
    eng = make_engine(model, checkpoint_every_blocks=1, num_checkpoints=2)
    run_all(eng, {"a": DOC + Q1}, max_tokens=1)  # keeps the two latest checkpoints: 768 and 896
    # 5 hit blocks without a checkpoint: recompute [128, 640); 256…512 are checkpoint positions but not exact yet
    got = run_all(eng, {"b": DOC[:700] + Q3}, max_tokens=1)["b"]
    assert got[1].cached_tokens == 128
    hits = eng.blocks.match(DOC, 7)[0]
    assert [eng.blocks.blocks[b].checkpoint is not None for b in hits] == [False] * 4 + [True, False, True]
    short = DOC[:600] + Q2  # 4 hit blocks, none with a checkpoint: recompute everything, exactly
    got = run_all(eng, {"c": short})["c"]
    assert got[1].cached_tokens == 0 and got[0] == cold(model, short)
