"""Batched compute across requests: each step is one forward call over every scheduled prefill chunk and decode
token, and what each request gets is what it gets alone."""

import pytest

from inference.engine import SamplingParams
from tests.inference.engine.engine_helpers import make_engine, random_ids, run_all


def _spy(eng, monkeypatch) -> list[list[int]]:
    """Record the piece sizes of every forward_packed call the engine makes."""
    calls, real = [], eng.runner.forward_packed

    def recording(pieces):
        calls.append([len(ids) for _, ids in pieces])
        return real(pieces)

    monkeypatch.setattr(eng.runner, "forward_packed", recording)
    return calls


@pytest.mark.slow
def test_one_forward_per_step_for_all_requests_and_each_gets_its_solo_tokens(model, monkeypatch):
    doc = random_ids(300, 7)
    prompts = {"short": random_ids(9, 1), "mid": random_ids(140, 2), "long": random_ids(700, 3),
               "doc-a": doc + random_ids(20, 4), "one": random_ids(1, 5)}
    solo = {rid: run_all(make_engine(model), {rid: ids}, max_tokens=6)[rid][0] for rid, ids in prompts.items()}
    eng = make_engine(model, max_num_batched_tokens=256)
    calls = _spy(eng, monkeypatch)
    got = run_all(eng, prompts, max_tokens=6)
    assert {rid: toks for rid, (toks, _) in got.items()} == solo
    assert all(sum(c) <= 256 for c in calls)
    mixed = [c for c in calls if len(c) >= 3 and max(c) > 1 and min(c) == 1]
    assert mixed, calls  # prefill chunks and decode tokens of several requests ran in the same call
    assert len(calls) < sum(len(c) for c in calls)  # fewer forward calls than pieces: requests share them
    # a second question about the document, while others decode: the hit resumes inside a shared call
    later = {"doc-b": doc + random_ids(20, 6), "more": random_ids(50, 8)}
    got = run_all(eng, later, max_tokens=6)
    assert got["doc-b"][1].cached_tokens == 256
    for rid, ids in later.items():
        assert got[rid][0] == run_all(make_engine(model), {rid: ids}, max_tokens=6)[rid][0]


def test_decodes_of_many_requests_share_one_call(model, monkeypatch):
    eng = make_engine(model, max_num_seqs=8)
    calls = _spy(eng, monkeypatch)
    prompts = {f"r{i}": random_ids(20 + 13 * i, 20 + i) for i in range(8)}
    got = run_all(eng, prompts, max_tokens=5)
    assert [8] * 4 == [len(c) for c in calls[-4:]] and all(c == [1] * 8 for c in calls[-4:])
    assert len(calls) == 5  # one call prefills all eight prompts, then one call per decode step
    for rid in ("r0", "r7"):
        assert got[rid][0] == run_all(make_engine(model), {rid: prompts[rid]}, max_tokens=5)[rid][0]


def test_a_failing_forward_ends_every_request_of_its_step_and_the_engine_goes_on(model, monkeypatch):
    """States may be half-updated after a failure inside the shared call: its requests end with the error, every
    block comes back, and later requests run normally."""
    eng = make_engine(model)
    for rid in ("a", "b"):
        eng.add_request(rid, random_ids(30, ord(rid)), SamplingParams(max_tokens=3, ignore_eos=True))

    def broken(pieces):
        raise RuntimeError("simulated kernel failure")

    monkeypatch.setattr(eng.runner, "forward_packed", broken)
    outs = {o.request_id: o for o in eng.step()}
    assert {rid: (o.finished, o.finish_reason) for rid, o in outs.items()} == {"a": (True, "abort"),
                                                                               "b": (True, "abort")}
    assert all("simulated kernel failure" in o.error for o in outs.values())
    assert eng.stats().cache_blocks_used == 0 and not eng.has_unfinished()
    monkeypatch.undo()
    got = run_all(eng, {"c": random_ids(30, 3)}, max_tokens=3)
    assert got["c"][0] == run_all(make_engine(model), {"c": random_ids(30, 3)}, max_tokens=3)["c"][0]


def test_a_failure_after_the_shared_forward_ends_only_its_request(model, monkeypatch):
    eng = make_engine(model)
    for rid in ("ok", "bad"):
        eng.add_request(rid, random_ids(25, len(rid)), SamplingParams(max_tokens=3, ignore_eos=True))

    def broken(logits, top=None):
        raise ValueError("sampler exploded")

    monkeypatch.setattr(eng.seqs["bad"], "sampler", broken)
    outs = {o.request_id: o for o in eng.step()}
    assert outs["bad"].finish_reason == "abort" and "sampler exploded" in outs["bad"].error
    assert not outs["ok"].finished and outs["ok"].new_token_ids
    while eng.has_unfinished():
        eng.step()
    assert eng.progress("ok").tokens_generated == 3 and eng.stats().cache_blocks_used == 0
