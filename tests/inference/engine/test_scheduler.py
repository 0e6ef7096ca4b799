"""Continuous batching: decodes and prefill chunks share a step within the token budget; chunks stop at checkpoint
boundaries; seats (max_num_seqs) bound the running set."""

from inference.engine import SamplingParams
from tests.inference.engine.engine_helpers import make_engine, random_ids


def test_decodes_and_prefills_share_steps_within_the_budget(model):
    eng = make_engine(model, max_num_batched_tokens=100, max_num_seqs=2)
    eng.add_request("a", random_ids(30, 1), SamplingParams(max_tokens=4, ignore_eos=True))
    eng.add_request("b", random_ids(150, 2), SamplingParams(max_tokens=4, ignore_eos=True))
    eng.add_request("c", random_ids(10, 3), SamplingParams(max_tokens=2, ignore_eos=True))
    work = []
    while eng.has_unfinished():
        scheduled = eng.scheduler.schedule()
        plan = [(s.request_id, n) for s, n in scheduled]
        assert sum(n for _, n in plan) <= 100
        work.append(plan)
        eng._execute(scheduled)
    assert work == [
        [("a", 30), ("b", 70)],  # a (shorter) first, b gets the rest of the budget; c waits for a seat
        [("a", 1), ("b", 58)],  # a decodes while b's prefill continues, up to its checkpoint at 128
        [("a", 1), ("b", 22)],  # b's prompt ends: b samples its first token
        [("a", 1), ("b", 1)],  # a's 4th token finishes it
        [("b", 1), ("c", 10)],  # a's seat goes to c
        [("b", 1), ("c", 1)],  # b's 4th and c's 2nd token finish both
    ]
    assert eng.stats().num_running == 0 and eng.stats().cache_blocks_used == 0


def test_prefill_chunks_stop_at_checkpoint_boundaries(model):
    eng = make_engine(model, max_num_batched_tokens=300, checkpoint_every_blocks=2)
    eng.add_request("a", random_ids(700, 4), SamplingParams(max_tokens=1))
    chunks = []
    while eng.has_unfinished():
        scheduled = eng.scheduler.schedule()
        chunks += [n for _, n in scheduled]
        eng._execute(scheduled)
    # checkpoints at 256 and 512 (every 2 blocks) and 640 (the prompt's last full block)
    assert chunks == [256, 256, 128, 60]
    hits = eng.blocks.match(random_ids(700, 4), 5)[0]
    assert [eng.blocks.blocks[b].checkpoint is not None for b in hits] == [False, True, False, True, True]
