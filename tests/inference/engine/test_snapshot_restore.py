"""Prefix snapshots through a real folder store, in process (docs/prefix-store.md): an engine restores what another
engine wrote and gets a cold run's greedy tokens (fp32, tie-free config); without window state it recomputes the
trailing window and counts only the rest; a store that never answers stalls no step."""

import socket
import threading

import pytest

from inference.engine import SamplingParams
from inference.prefix_store.config import PrefixStoreConfig
from inference.prefix_store.store import PrefixStore
from tests.helpers.wait import wait_until
from tests.inference.engine.engine_helpers import make_engine, random_ids, run_one

DOC = random_ids(1300, seed=11)  # 10 full blocks + 20 tokens
Q1, Q2, Q3 = random_ids(40, 12), random_ids(25, 13), random_ids(31, 14)
GREEDY = SamplingParams(max_tokens=5, ignore_eos=True, temperature=0.0)
FP = "f" * 32


def store_on(url: str, model, **kw) -> PrefixStore:
    kw.setdefault("min_tokens", 256)
    return PrefixStore.open(PrefixStoreConfig(url, **kw), FP, model.args.num_hidden_layers, maintain=False)


def engine_with(model, store, **kw):
    eng = make_engine(model, model_id="m", **kw)
    eng.attach_prefix_store(store)
    return eng


def settle(store: PrefixStore, timeout: float = 60) -> None:
    wait_until(lambda: store.pending_writes() == 0, timeout, lambda: f"uploads done ({store.pending_writes()} pending)")


_COLD: dict[tuple, list[int]] = {}


def cold(model, ids: list[int]) -> list[int]:
    """Greedy tokens of an engine with no store and an empty cache."""
    if tuple(ids) not in _COLD:
        _COLD[tuple(ids)] = run_one(make_engine(model, model_id="m"), "cold", ids, GREEDY)[0]
    return _COLD[tuple(ids)]


@pytest.mark.slow
def test_a_fresh_engine_restores_a_prefix_with_cold_greedy_tokens(model, tmp_path):
    url = f"file://{tmp_path}"
    first = store_on(url, model)
    eng = engine_with(model, first)
    tokens, out = run_one(eng, "a", DOC + Q1, GREEDY)
    assert tokens == cold(model, DOC + Q1) and out.cached_tokens == 0
    settle(first)
    assert first.stats()["writes"] == 1  # at DOC+Q1's last full block: 10 blocks, all inside DOC, window state

    eng2 = engine_with(model, store_on(url, model))  # another process: an empty memory cache
    tokens, out = run_one(eng2, "b", DOC + Q2, GREEDY)
    assert tokens == cold(model, DOC + Q2)
    assert out.cached_tokens == 1280
    st = eng2.stats()
    assert (st.restored_tokens, st.recomputed_tokens, st.prefix_hit_tokens) == (1280, 0, 1280)
    assert eng2.snapshots.store.stats()["restores"] == 1
    # now in memory: the next question is a memory hit, not a restore
    tokens, out = run_one(eng2, "c", DOC + Q3, GREEDY)
    assert out.cached_tokens == 1280 and eng2.stats().restored_tokens == 1280
    assert eng2.snapshots.store.stats()["restores"] == 1


@pytest.mark.slow
def test_a_partial_match_recomputes_the_trailing_window_then_the_divergence_is_stored(model, tmp_path):
    url = f"file://{tmp_path}"
    first = store_on(url, model, tail_tokens=0)  # the end's window state only (the tail's: the test below)
    # 10 full blocks; block 9 (1152-1279) holds DOC[1152:1250] and Q1's first 30 tokens
    run_one(engine_with(model, first), "a", DOC[:1250] + Q1, GREEDY)
    settle(first)

    second = store_on(url, model, tail_tokens=0)  # with a tail, block 9's state would go into its block-10 file
    eng = engine_with(model, second)
    tokens, out = run_one(eng, "b", DOC + Q2, GREEDY)  # shares blocks 0-8 with the snapshot, not block 9
    assert tokens == cold(model, DOC + Q2)
    # 9 restored blocks without window state: the last L = 4 are recomputed, as for a memory hit without checkpoint
    assert out.cached_tokens == (9 - 4) * 128
    st = eng.stats()
    assert (st.restored_tokens, st.recomputed_tokens) == (640, 512)
    settle(second)
    assert second.stats()["writes"] == 2  # where it left the stored prefix (9 blocks) and its own last block (10)

    third = store_on(url, model)
    eng3 = engine_with(model, third)
    ask = DOC[:1200] + Q3  # 9 blocks to take: the divergence snapshot, with its window state
    tokens, out = run_one(eng3, "c", ask, GREEDY)
    assert out.cached_tokens == 1152 and tokens == cold(model, ask)
    assert eng3.stats().recomputed_tokens == 0


@pytest.mark.slow
def test_a_request_that_leaves_a_snapshot_in_its_tail_restores_the_window_state_stored_there(model, tmp_path):
    # the question after a summary: both share the document and leave it in the first's last 512 tokens (the tail)
    url = f"file://{tmp_path}"
    first = store_on(url, model)
    run_one(engine_with(model, first), "a", DOC[:1250] + Q1, GREEDY)  # 1290 tokens: tails at blocks 7, 8 and 9
    settle(first)
    assert first.stats()["writes"] == 1  # one file: the rows once, window states at blocks 7, 8, 9 and 10

    second = store_on(url, model)
    eng = engine_with(model, second)
    assert eng.snapshots.probe_tokens(DOC + Q2, None, 0) == 9 * 128
    tokens, out = run_one(eng, "b", DOC + Q2, GREEDY)  # leaves it inside block 9: resumes exactly at 9 blocks
    assert tokens == cold(model, DOC + Q2)
    assert out.cached_tokens == 9 * 128
    st = eng.stats()
    assert (st.restored_tokens, st.recomputed_tokens) == (1152, 0)


class BlackHole:
    """A TCP server on loopback that accepts connections and never answers: an S3 endpoint that hangs."""

    def __init__(self):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.conns: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)

    def close(self) -> None:
        self.sock.close()
        for c in self.conns:
            c.close()


@pytest.mark.slow
def test_a_store_that_never_answers_stalls_no_step_and_fails_no_request(model):
    other = random_ids(400, 15) + Q3  # another document: nothing of it in memory
    # the references first: computing them later would eat into the store's skip window (SKIP_AFTER_TIMEOUT_S)
    want = {"short": cold(model, Q2 * 2), "long": cold(model, DOC + Q1), "again": cold(model, other)}
    hole = BlackHole()
    try:
        store = store_on(f"s3://prefixes?endpoint=127.0.0.1:{hole.port}&secure=0", model, restore_timeout_s=3.0,
                         io_timeout_s=60.0, max_pending_writes=1, access_key="k", secret_key="s")
        eng = engine_with(model, store)
        eng.add_request("long", DOC + Q1, GREEDY)  # its lookup hangs on the store
        eng.add_request("short", Q2 * 2, GREEDY)  # 50 tokens: nothing to look up
        short_done = None  # what the long request was doing when the short one finished
        outs = {"long": [], "short": []}
        while eng.has_unfinished():
            for o in eng.step():
                outs[o.request_id] += o.new_token_ids
                if o.request_id == "short" and o.finished:
                    short_done = (eng.progress("long"), eng.stats().restore_timeouts)
        # the short request ran to the end while the long one still waited for its restore (not timed out yet,
        # nothing of it computed)
        assert short_done is not None
        long_then, timeouts_then = short_done
        assert (long_then.state, long_then.prefill_tokens_done, timeouts_then) == ("waiting", 0, 0), short_done
        assert outs["short"] == want["short"]
        # then the long one gave up on the store after restore_timeout_s and computed its prefix: right tokens
        assert outs["long"] == want["long"]
        assert eng.stats().restore_timeouts == 1 and eng.progress("long").cached_tokens == 0
        # its snapshot went to the (hanging) upload queue; the next one is deferred (its blocks stay in memory, to
        # be copied out before eviction and uploaded when the queue has room), never waited for
        assert store.pending_writes() == 1
        tokens, _ = run_one(eng, "again", other, GREEDY)
        assert tokens == want["again"]
        assert len(eng.snapshots.deferred) == 1 and store.pending_writes() == 1
        # after one timeout the engine stops asking the hung store for a while: this request skipped its lookup
        # (had it asked, it would have waited out a second timeout)
        assert eng.snapshots.lookups_skipped == 1 and eng.stats().restore_timeouts == 1
    finally:
        hole.close()
        store.close()
