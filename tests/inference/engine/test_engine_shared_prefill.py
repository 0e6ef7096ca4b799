"""Bulk Q&A: questions about one document submitted together. The document is prefilled once; the others wait for
that prefill to write the shared blocks and resume from its checkpoint where they diverge, with nothing recomputed.
Unrelated requests are not held back, and every request gets its solo tokens."""

import pytest

from inference.engine import SamplingParams
from tests.inference.engine.engine_helpers import make_engine, random_ids, run_all


def _solo(model, ids: list[int]) -> list[int]:
    return run_all(make_engine(model), {"x": ids}, max_tokens=4)["x"][0]


@pytest.mark.slow
def test_questions_about_one_document_prefill_it_once(model):
    doc = random_ids(600, 40)  # 4 full blocks + 88 tokens
    prompts = {f"q{i}": doc + random_ids(20, 50 + i) for i in range(6)}
    eng = make_engine(model, max_num_batched_tokens=256)
    got = run_all(eng, prompts, max_tokens=4)
    # the first prefills 620 tokens; each other resumes at 512 (the shared full blocks) and computes 108
    assert eng.prefill_tokens == 620 + 5 * 108
    assert sorted(out.cached_tokens for _, out in got.values()) == [0] + [512] * 5
    for rid in ("q0", "q3", "q5"):
        assert got[rid][0] == _solo(model, prompts[rid])


@pytest.mark.slow
def test_the_prefill_checkpoints_where_waiting_requests_diverge(model):
    doc = random_ids(700, 41)  # 5 full blocks + 60 tokens
    long_q = doc + random_ids(250, 60)  # its own checkpoint would be at its last full block, 7
    short_q = doc + random_ids(10, 61)
    eng = make_engine(model, max_num_batched_tokens=200)
    got = run_all(eng, {"long": long_q, "short": short_q}, max_tokens=4)
    assert got["short"][1].cached_tokens == 640  # a checkpoint at block 5 was taken for it: no recompute
    assert eng.prefill_tokens == 950 + (710 - 640)
    assert got["short"][0] == _solo(model, short_q) and got["long"][0] == _solo(model, long_q)


def test_unrelated_requests_are_not_held_behind_waiting_ones(model):
    doc = random_ids(900, 42)
    eng = make_engine(model, max_num_batched_tokens=128)
    for rid, ids in (("lead", doc + [7]), ("follow", doc + [8]), ("other", random_ids(30, 43))):
        eng.add_request(rid, ids)
    first = {seq.request_id for seq, _ in eng.scheduler.schedule()}
    assert first == {"lead", "other"} and [s.request_id for s in eng.scheduler.waiting] == ["follow"]


def test_a_waiting_request_goes_on_when_the_prefill_it_waits_for_is_aborted(model):
    doc = random_ids(900, 44)
    eng = make_engine(model, max_num_batched_tokens=128)
    for rid, ids in (("lead", doc + [7]), ("follow", doc + [8])):
        eng.add_request(rid, ids, SamplingParams(max_tokens=4, ignore_eos=True))
    eng.step()
    assert [s.request_id for s in eng.scheduler.waiting] == ["follow"]  # waits for lead's blocks
    eng.abort("lead")
    toks = []
    while eng.has_unfinished():
        for o in eng.step():
            toks += o.new_token_ids
    assert eng.progress("follow").state == "finished" and toks == _solo(model, doc + [8])
    assert eng.stats().cache_blocks_used == 0
