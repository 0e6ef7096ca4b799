"""Snapshots that must not be used are ignored, counted by reason, deleted and the prefix recomputed with a cold
run's greedy tokens (docs/prefix-store.md#format): corrupt, truncated, another model's, another salt's."""

import shutil

import pytest

from inference.engine.block_manager import salt_root
from tests.inference.engine.engine_helpers import make_engine, random_ids, run_one
from tests.inference.engine.test_snapshot_restore import FP, GREEDY, cold, engine_with, settle, store_on

pytestmark = pytest.mark.slow  # a few engine runs each

DOC, Q = random_ids(700, seed=21), random_ids(30, 22)


def written_snapshot(model, url: str, fingerprint: str = FP, salt: str | None = None):
    store = store_on(url, model)
    store.fingerprint, store.base = fingerprint, f"prefixes/v1/{fingerprint}/"
    eng = engine_with(model, store)
    run_one(eng, "w", DOC + Q, GREEDY, cache_salt=salt)
    settle(store)
    (name,) = [o.name for o in store.backend.list("prefixes/v") if o.name.endswith(".safetensors")]
    return store, name


def corrupt(path):
    data = bytearray(path.read_bytes())
    data[-100] ^= 0xFF
    path.write_bytes(bytes(data))


def truncate(path):
    path.write_bytes(path.read_bytes()[:-1000])


@pytest.mark.parametrize("damage, reason", [(corrupt, "corrupt"), (truncate, "truncated")])
def test_a_damaged_snapshot_is_ignored_and_recomputed(model, tmp_path, damage, reason):
    _, name = written_snapshot(model, f"file://{tmp_path}")
    damage(tmp_path / name)
    store = store_on(f"file://{tmp_path}", model)
    tokens, out = run_one(engine_with(model, store), "r", DOC + Q, GREEDY)
    assert out.cached_tokens == 0 and tokens == cold(model, DOC + Q)
    assert store.stats()[f"ignored_{reason}"] == 1 and "restores" not in store.stats()
    settle(store)  # the bad one was deleted, so the recomputed prefix's snapshot replaced it
    assert store.stats()["writes"] == 1
    fresh = engine_with(model, store_on(f"file://{tmp_path}", model))
    assert run_one(fresh, "again", DOC + Q, GREEDY)[1].cached_tokens == 640


def test_another_models_snapshot_is_ignored(model, tmp_path):
    other, name = written_snapshot(model, f"file://{tmp_path}", fingerprint="a" * 32)
    ours = tmp_path / name.replace("a" * 32, FP)  # as if written under this model's fingerprint
    ours.parent.mkdir(parents=True)
    shutil.copy(tmp_path / name, ours)
    store = store_on(f"file://{tmp_path}", model)
    eng = engine_with(model, store)
    tokens, out = run_one(eng, "r", DOC + Q, GREEDY)
    assert out.cached_tokens == 0 and tokens == cold(model, DOC + Q)
    assert store.stats()["ignored_fingerprint"] == 1
    # and /metrics says so, by reason
    from inference.server.metrics import ServerMetrics
    from inference.server.runner import EngineRunner

    runner = EngineRunner(eng)
    runner._refresh_stats(force=True)
    text = ServerMetrics(runner).render().decode()
    assert 'wholedoc_inference_prefix_store_ignored_total{reason="fingerprint"} 1.0' in text
    assert 'wholedoc_inference_prefix_store_ignored_total{reason="corrupt"} 0.0' in text


def test_another_salts_snapshot_never_restores(model, tmp_path):
    store_a, name = written_snapshot(model, f"file://{tmp_path}", salt="tenant-a")
    store = store_on(f"file://{tmp_path}", model)
    eng = engine_with(model, store)
    # tenant-b's chain names another object: a plain miss, nothing restored
    tokens, out = run_one(eng, "b", DOC + Q, GREEDY, cache_salt="tenant-b")
    assert out.cached_tokens == 0 and tokens == cold(model, DOC + Q)
    # tenant-a's bytes planted under tenant-b's name: its block hashes are not tenant-b's, so it is refused
    keys_b = eng.snapshots.chain_keys(DOC + Q, salt_root("tenant-c"))[:5]
    planted = tmp_path / store.name_of(keys_b)
    planted.parent.mkdir(parents=True)
    shutil.copy(tmp_path / name, planted)
    eng2 = engine_with(model, store_on(f"file://{tmp_path}", model))
    tokens, out = run_one(eng2, "c", DOC + Q, GREEDY, cache_salt="tenant-c")
    assert out.cached_tokens == 0 and tokens == cold(model, DOC + Q)
    assert eng2.snapshots.store.stats()["ignored_chain"] == 1
    # and tenant-a itself still restores its own
    eng3 = engine_with(model, store_on(f"file://{tmp_path}", model))
    _, out = run_one(eng3, "a", DOC + Q, GREEDY, cache_salt="tenant-a")
    assert out.cached_tokens == 640 and eng3.stats().restored_tokens == 640


def test_without_a_store_nothing_changes(model):
    eng = make_engine(model, model_id="m")
    assert eng.snapshots is None
    _, out = run_one(eng, "x", DOC + Q, GREEDY)
    assert eng.stats().restored_tokens == 0 and out.cached_tokens == 0
