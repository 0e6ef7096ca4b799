"""The prefix store on two gloo ranks (docs/parallel.md, docs/prefix-store.md): a document prefilled and snapshotted
by a `--tp 2` engine is restored by fresh engines (`--tp 2`, then `--ep 2`: new processes, an empty memory cache),
which answer a new question with the restored tokens counted and the greedy tokens and logits of a cold
single-process run; every rank's pools hold rank 0's bytes (a rank that skipped the restore fails the digest check,
and its shard computes from zeros: other tokens). And the real server: `--ep 2 --prefix-store` survives a restart."""

import pytest
import torch

from inference.checkpoint.loader import load_model
from inference.engine import Engine, EngineConfig
from inference.model.runner import ModelRunner
from inference.parallel import launch
from inference.parallel.executor import ParallelRunner
from inference.parallel.launch import LoadSpec
from inference.parallel.serving import ParallelEngine, start_engine
from inference.parallel.spec import ParallelSpec
from inference.parallel.worker import serve_worker
from tests.inference.engine.engine_helpers import record_logits, run_one
from tests.inference.engine.test_snapshot_restore import DOC, GREEDY, Q1, Q2, Q3, settle, store_on
from tests.inference.prefix_store.test_server_prefix_store import ask, tokens_of, words, written
from tests.inference.server.helpers import ROOMY, Server

pytestmark = pytest.mark.slow
ATOL = 1e-4  # as tests/inference/parallel/test_parallel_parity.py
CONFIG = EngineConfig(cache_bytes=32 << 20, max_num_batched_tokens=1024, num_checkpoints=8, model_id="m")


def recorded(eng: Engine, rid: str, ids: list[int]):
    """run_one, with the logits rows of every forward call: (tokens, last output, rows)."""
    inner = eng.runner.forward_packed
    rows = record_logits(eng)
    try:
        tokens, out = run_one(eng, rid, ids, GREEDY)
    finally:
        eng.runner.forward_packed = inner
    return tokens, out, rows


def parallel(path, url, model, tp: int, ep: int, store_first: bool = False):
    """A fresh parallel engine (new processes) with the store attached after the runner, as inference.serve does
    (store_first: before it, as start_engine would if it took a store). Rank 0 then computes with rank 1's thread
    count, so that the replicas are bitwise rank 0's (with another count a GEMV sums in another order and the
    decoded rows differ in the last bits: protocol.pool_digest)."""
    spec, load, store = ParallelSpec(tp=tp, ep=ep, timeout_s=120), LoadSpec(str(path)), store_on(url, model)
    if store_first:
        ranks = launch.start(spec, load, serve_worker)
        engine = Engine(ranks.model, CONFIG)
        engine.attach_prefix_store(store)
        runner = ParallelRunner(ModelRunner(ranks.model), ranks.ctx)
        runner.attach(engine)
        ranks.watch(runner.fail)
        pe = ParallelEngine(engine, runner, ranks)
    else:
        pe = start_engine(spec, load, CONFIG)
        pe.engine.attach_prefix_store(store)
    assert pe.engine.snapshots.replicate == pe.runner.replicate_restore
    torch.set_num_threads(int(pe.runner.pool_digests()[1]["threads"]))
    return pe, store


def assert_replicas_equal(pe) -> None:
    digests = pe.runner.pool_digests()
    assert len(digests) == 2 and digests[1] == digests[0], digests


@pytest.fixture
def threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_a_snapshot_written_on_two_ranks_is_restored_on_every_rank(tiny_checkpoint, tmp_path, threads):
    model = load_model(tiny_checkpoint)
    cold = {}
    for name, q in (("q2", Q2), ("q3", Q3)):
        cold[name] = recorded(Engine(model, CONFIG), name, DOC + q)
        assert cold[name][1].cached_tokens == 0
    url = f"file://{tmp_path}"

    pe, store = parallel(tiny_checkpoint, url, model, 2, 1)
    try:
        _, out = run_one(pe.engine, "a", DOC + Q1, GREEDY)
        assert out.cached_tokens == 0
        settle(store)
        assert store.stats()["writes"] == 1  # 10 blocks with their window state, read from rank 0's pools
        assert_replicas_equal(pe)  # rows, indexer keys, windows, carries: what rank 0 saved is every rank's
    finally:
        pe.close()
        store.close()

    for (tp, ep), (name, q) in (((2, 1), ("q2", Q2)), ((1, 2), ("q3", Q3))):  # restarts: new processes
        pe, store = parallel(tiny_checkpoint, url, model, tp, ep, store_first=ep == 2)
        try:
            tokens, out, rows = recorded(pe.engine, name, DOC + q)
            st = pe.engine.stats()
            assert out.cached_tokens == 1280 and (st.restored_tokens, st.recomputed_tokens) == (1280, 0)
            assert store.stats()["restores"] == 1
            want_tokens, _, want_rows = cold[name]
            assert tokens == want_tokens and len(tokens) == GREEDY.max_tokens
            # the calls that sampled a token: the prompt's last chunk, then one per decoded token
            n = GREEDY.max_tokens
            assert len(rows) == n  # the question's 45 or 51 tokens in one call: nothing of DOC recomputed
            for a, b in zip(rows, want_rows[-n:]):
                assert (a - b).abs().max().item() <= ATOL
            assert_replicas_equal(pe)
        finally:
            pe.close()
            store.close()


def test_a_parallel_server_with_a_prefix_store_survives_a_restart(tiny_checkpoint, tmp_path):
    store = ("--prefix-store", f"file://{tmp_path / 'store'}", "--ep", "2")
    doc = words(600, seed=5)
    first = Server(tiny_checkpoint, *ROOMY, *store, log=tmp_path / "first.log")
    try:
        n_doc = tokens_of(first, doc)
        assert ask(first, doc, "What is the first word?").usage.prompt_tokens_details.cached_tokens == 0
        # the cold answer to the second question: another salt shares no cache block (nor any snapshot)
        cold = ask(first, doc, "How many lines are there?", cache_salt="cold-reference")
        assert cold.usage.prompt_tokens_details.cached_tokens == 0
        written(first, 2)
    finally:
        first.close()
    assert "not available" not in (tmp_path / "first.log").read_text()

    second = Server(tiny_checkpoint, *ROOMY, *store, log=tmp_path / "second.log")
    try:
        warm = ask(second, doc, "How many lines are there?")
        cached = warm.usage.prompt_tokens_details.cached_tokens
        assert cached >= n_doc - 128, (cached, n_doc)  # the document's whole blocks
        assert warm.choices[0].message.content == cold.choices[0].message.content
        m = second.wait_metrics(lambda m: m.get("prefix_restored_tokens_total") == cached, "restored tokens counted")
        assert m["prefix_store_restores_total"] == 1
    finally:
        second.close()
