"""Engine API: refusals before any work, abort frees everything, progress, preemption, sampling, finish reasons."""

import random

import pytest

from inference.engine import SamplingParams
from inference.errors import DuplicateRequest, InputError, PromptTooLong, QueueFull
from inference.model.decode import generate
from tests.inference.engine.engine_helpers import make_engine, random_ids, run_all, run_one


def all_free(eng) -> bool:
    b = eng.blocks
    return b.num_free_blocks == b.num_blocks and b.num_free_slots == eng.pools.num_slots


def test_prompt_too_long_names_both_counts(model):
    eng = make_engine(model, max_model_len=1000)
    with pytest.raises(PromptTooLong) as e:
        eng.add_request("x", random_ids(990, 1), SamplingParams(max_tokens=20))
    assert (e.value.prompt_tokens, e.value.max_tokens, e.value.max_model_len) == (990, 20, 1000)
    assert "990" in str(e.value) and "1000" in str(e.value)
    assert not eng.has_unfinished()
    eng.add_request("ok", random_ids(980, 1), SamplingParams(max_tokens=20))  # exactly at the limit


def test_context_window_is_capped_by_the_cache(model):
    eng = make_engine(model, cache_bytes=8 << 20)
    assert eng.max_model_len == eng.blocks.num_blocks * 128 < model.args.max_position_embeddings


def test_bad_requests_are_refused(model):
    eng = make_engine(model, max_waiting=2)
    with pytest.raises(InputError, match="empty"):
        eng.add_request("e", [], SamplingParams())
    with pytest.raises(InputError, match=r"\[0, 512\)"):
        eng.add_request("v", [3, 512], SamplingParams())
    with pytest.raises(InputError, match="tokenizer"):
        eng.add_request("s", [3, 4], SamplingParams(stop=("x",)))
    eng.add_request("a", [3, 4], SamplingParams())
    with pytest.raises(DuplicateRequest):
        eng.add_request("a", [5], SamplingParams())
    eng.add_request("b", [3, 4], SamplingParams())
    with pytest.raises(QueueFull) as e:
        eng.add_request("c", [3, 4], SamplingParams())
    assert e.value.retry_after_s > 0
    assert eng.stats().num_waiting == 2


def test_progress_chunks_and_abort_frees_every_block(model):
    eng = make_engine(model, max_num_batched_tokens=128)
    ids = random_ids(1000, 5)
    eng.add_request("long", ids, SamplingParams(max_tokens=4))
    assert eng.progress("long").state == "waiting"
    done = []
    for _ in range(3):
        eng.step()
        p = eng.progress("long")
        done.append((p.state, p.prefill_tokens_done, p.prefill_tokens_total))
    assert done == [("prefilling", 128, 1000), ("prefilling", 256, 1000), ("prefilling", 384, 1000)]
    assert eng.stats().cache_blocks_used == 3
    assert eng.abort("long") is True
    assert eng.abort("long") is False and eng.abort("nope") is False
    assert eng.progress("long").state == "aborted"
    assert not eng.has_unfinished() and eng.step() == []
    assert all_free(eng) and eng.stats().cache_blocks_used == 0


def test_abort_waiting_request(model):
    eng = make_engine(model, max_num_seqs=1)
    eng.add_request("a", random_ids(50, 1), SamplingParams(max_tokens=3))
    eng.add_request("b", random_ids(50, 2), SamplingParams(max_tokens=3))
    eng.step()
    assert eng.progress("b").state == "waiting"
    assert eng.abort("b")
    finished = []
    while eng.has_unfinished():
        finished += [o.request_id for o in eng.step() if o.finished]
    assert finished == ["a"] and eng.progress("b").state == "aborted" and all_free(eng)


@pytest.mark.slow
def test_preemption_under_cache_pressure_keeps_outputs_exact(model):
    # room for 8 history blocks: four 250-token prompts fill them; decoding past 256 needs a ninth
    window, block = 4 * 128 * 64 * 4, 128 * (2 * (64 + 32) // 4 * 4 + 64 * 4 // 16)  # fp32 rows of this config
    eng = make_engine(model, cache_bytes=4 * window + 8 * block, max_num_seqs=4, num_checkpoints=0,
                      max_num_batched_tokens=512)
    assert eng.blocks.num_blocks == 8
    prompts = {f"r{i}": random_ids(250, 10 + i) for i in range(4)}
    got = run_all(eng, prompts, max_tokens=10)
    assert eng.stats().num_preemptions > 0
    for rid, ids in prompts.items():
        assert got[rid][0] == generate(model, ids, 10)[0]
        assert got[rid][1].finish_reason == "length" and got[rid][1].completion_tokens == 10
    assert all_free(eng)


def test_sampling_seed_top_p_and_stop_token(model):
    ids = random_ids(60, 7)
    greedy = generate(model, ids, 6)[0]

    def sample(params):
        return run_one(make_engine(model), "s", ids, params)

    hot = SamplingParams(temperature=5.0, max_tokens=6, seed=123, ignore_eos=True)
    a, b = sample(hot)[0], sample(hot)[0]
    assert a == b and a != greedy  # seeded: reproducible; at temperature 5 on 512 tokens, not the argmax path
    assert sample(SamplingParams(temperature=5.0, top_p=1e-6, max_tokens=6, seed=1, ignore_eos=True))[0] == greedy
    toks, last = sample(SamplingParams(max_tokens=6, stop_token_ids=(greedy[2],)))
    assert toks == greedy[:3] and last.finish_reason == "stop" and last.finished


def test_a_failing_request_is_aborted_without_stopping_the_others(model):
    eng = make_engine(model)
    eng.add_request("ok", random_ids(20, 1), SamplingParams(max_tokens=2, ignore_eos=True))
    eng.add_request("bad", random_ids(20, 2), SamplingParams(max_tokens=2, ignore_eos=True))
    eng.seqs["bad"].prompt_ids[5] = 10_000  # corrupt after admission control: the model rejects the id
    outs = {o.request_id: o for o in eng.step()}
    assert outs["bad"].finished and outs["bad"].finish_reason == "abort" and "InputError" in outs["bad"].error
    assert not outs["ok"].finished and outs["ok"].error is None
    while eng.has_unfinished():
        eng.step()
    assert eng.progress("ok").tokens_generated == 2 and eng.progress("bad").state == "aborted"
    assert all_free(eng)


def test_thinking_budget_forces_the_end_of_thinking_token(model):
    ids = random_ids(40, 9)
    free = run_all(make_engine(model), {"a": ids}, max_tokens=6)["a"][0]
    end = next(t for t in range(2, 512) if t not in free)  # an id the model does not produce here on its own

    def capped(budget):
        return run_one(make_engine(model), "c", ids, SamplingParams(max_tokens=6, ignore_eos=True,
                                                                      thinking_budget=budget, end_thinking_id=end))[0]

    three = capped(3)
    assert three[:3] == free[:3] and three[3] == end and len(three) == 6 and three.count(end) == 1
    assert capped(0)[0] == end
    with pytest.raises(InputError, match="end_thinking_id"):
        SamplingParams(thinking_budget=3)



@pytest.mark.slow
def test_preemption_of_a_prompt_later_in_the_same_steps_prefill_order(model):
    # arrivals over several steps into 8 history blocks: a prefill that grows preempts the last-admitted one, which
    # this step's prefill loop then meets with its state released (it used to crash the engine); outputs stay exact
    window, block = 4 * 128 * 64 * 4, 128 * (2 * (64 + 32) // 4 * 4 + 64 * 4 // 16)  # fp32 rows of this config
    rng = random.Random(1)
    nseq, nck, nb, batched = rng.choice([2, 3, 4]), rng.choice([0, 1, 2]), rng.choice([6, 8, 10]), \
        rng.choice([256, 384, 512, 1024])
    eng = make_engine(model, cache_bytes=(nseq + nck) * window + nb * block, max_num_seqs=nseq, num_checkpoints=nck,
                      max_num_batched_tokens=batched)
    base, arrivals = random_ids(600, 1), []
    for i in range(rng.randint(3, 7)):
        n = rng.randint(100, min(eng.max_model_len - 10, 900))
        ids = (base[:rng.randint(0, 500)] + random_ids(n, 1000 + i))[:n]
        arrivals.append((rng.randint(0, 6), f"r{i}", ids))
    max_tokens, got, step = {}, {rid: [] for _, rid, _ in arrivals}, 0
    while step <= 6 or eng.has_unfinished():
        for at, rid, ids in arrivals:
            if at == step:
                max_tokens[rid] = rng.randint(1, 40)
                eng.add_request(rid, ids, SamplingParams(max_tokens=max_tokens[rid], ignore_eos=True))
        for out in eng.step():
            got[out.request_id] += out.new_token_ids
        step += 1
    assert eng.stats().num_preemptions > 0
    for _, rid, ids in arrivals:
        assert got[rid] == generate(model, ids, max_tokens[rid])[0]
    assert all_free(eng)
