"""Per-request cache_salt: the same prompt under another salt (or none) gets no hit, no shared block and no
checkpoint; the same salt hits as an unsalted cache does; probe() answers per salt; preemption keeps the salt."""

import pytest

from inference.engine import SamplingParams
from inference.engine.block_manager import salt_root
from inference.model.decode import generate
from tests.inference.engine.engine_helpers import make_engine, random_ids, run_one

pytestmark = pytest.mark.slow

DOC = random_ids(900, seed=21)  # 7 full blocks + 4 tokens
Q1, Q2, Q3 = random_ids(20, 22), random_ids(33, 23), random_ids(7, 24)


def run_salted(eng, rid: str, ids: list[int], salt: str | None, max_tokens: int = 5):
    """One request with a cache salt, stepped to the end: (token ids, last RequestOutput)."""
    return run_one(eng, rid, ids, SamplingParams(max_tokens=max_tokens, ignore_eos=True), cache_salt=salt)


def test_salts_separate_the_prefix_cache_exactly(model):
    eng = make_engine(model, checkpoint_every_blocks=2, num_checkpoints=16)  # room for every salt's checkpoints
    first = run_salted(eng, "a1", DOC + Q1, "tenant-a")
    assert first[1].cached_tokens == 0
    assert (eng.probe(DOC + Q2, "tenant-a"), eng.probe(DOC + Q2, "tenant-b"), eng.probe(DOC + Q2)) == (896, 0, 0)
    plain = run_salted(eng, "n1", DOC + Q2, None)
    assert plain[1].cached_tokens == 0  # no salt is a cache of its own
    cold = generate(model, DOC + Q2, 5)[0]
    b1 = run_salted(eng, "b1", DOC + Q2, "tenant-b")
    assert b1[1].cached_tokens == 0 and b1[0] == cold  # neither A's blocks nor the unsalted ones are B's
    assert eng.probe(DOC + Q3, "tenant-a") == eng.probe(DOC + Q3, "tenant-b") == eng.probe(DOC + Q3) == 896
    a2 = run_salted(eng, "a2", DOC + Q2, "tenant-a")
    assert a2[1].cached_tokens == 896 and a2[0] == cold  # the same salt hits, exactly
    b2 = run_salted(eng, "b2", DOC[:650] + Q3, "tenant-b")
    assert b2[1].cached_tokens == 512  # B's own chain: hit blocks 0-4, resume at its every-2-blocks checkpoint
    st = eng.stats()
    assert (st.prefix_hit_tokens, eng.scheduler.num_preemptions) == (896 + 512, 0)
    assert len(eng.blocks.by_key) == 3 * 7  # each of tenant-a, tenant-b and no salt holds its own 7 blocks
    for salt in ("tenant-a", "tenant-b", None):
        assert len(eng.blocks.match(DOC, 7, salt_root(salt))[0]) == 7


def test_preemption_keeps_the_salt_and_resumes_from_its_own_checkpoint(model):
    """A preempted salted request comes back to its own salted blocks: it resumes at its checkpoint (512) instead
    of recomputing from 0, and every block it registers belongs to its salt's chain."""
    eng = make_engine(model, checkpoint_every_blocks=2, max_num_batched_tokens=256)
    prompt = DOC + Q1
    eng.add_request("a", prompt, SamplingParams(max_tokens=3, ignore_eos=True), cache_salt="tenant-a")
    tokens = []
    while eng.progress("a").prefill_tokens_done < 512:  # chunks stop at checkpoint boundaries: 256, 512
        tokens += [t for o in eng.step() for t in o.new_token_ids]
    seq = eng.seqs["a"]
    assert seq.num_computed == 512
    eng.scheduler.preempt(seq, [])  # what the scheduler does when history blocks run out
    while eng.has_unfinished():
        tokens += [t for o in eng.step() for t in o.new_token_ids]
    st = eng.stats()
    assert st.num_preemptions == 1 and st.prefill_tokens == len(prompt)  # nothing before 512 was computed twice
    assert tokens == generate(model, prompt, 3)[0]
    assert len(eng.blocks.match(DOC, 7, salt_root("tenant-a"))[0]) == 7
    assert eng.blocks.match(DOC, 7)[0] == [] and eng.probe(DOC + Q2) == 0
