"""The store on its own (docs/prefix-store.md): eviction by age and size, least recently used first, one process
at a time under the lock object; tags; the format's header; the tenant-blob sweep never touches prefixes/; the same
operations on moto's S3 server."""

import os
import time

import pytest
import torch

from inference.prefix_store.backends import FolderBackend, S3Backend
from inference.prefix_store.config import PrefixStoreConfig
from inference.prefix_store.errors import BadStoreUrl, SnapshotRejected
from inference.prefix_store.snapshot import Snapshot, decode, encode
from inference.prefix_store.store import LOCK, PrefixStore

FP = "1" * 32


def snap(first: int, blocks: int) -> Snapshot:
    keys = [bytes([first, i]) * 8 for i in range(blocks)]
    return Snapshot(keys, [torch.full((blocks, 2, 4), float(first)), None], [torch.ones(blocks, 2, 3), None],
                    [torch.zeros(128, 4), torch.ones(128, 4)], [(None, None, None, None)] * 2)


def folder_store(root, **kw) -> PrefixStore:
    return PrefixStore(FolderBackend(root), PrefixStoreConfig(f"file://{root}", **kw), FP, 2, maintain=False)


def age(root, name: str, seconds: float) -> None:
    for n in (name, name + ".used"):
        p = root / n
        if p.exists():
            t = time.time() - seconds
            os.utime(p, (t, t))


def test_format_round_trip_and_header_checks():
    s = snap(1, 3)
    data = encode(s, FP)
    back = decode(data, FP, s.block_keys, 2)
    assert back.block_keys == s.block_keys and torch.equal(back.rows[0], s.rows[0]) and back.has_window
    part = decode(data, FP, s.block_keys[:2] + [b"x" * 16], 2)  # a request sharing 2 of its 3 blocks
    assert part.num_blocks == 2 and not part.has_window and part.rows[0].shape[0] == 2
    for bad, reason in ((data[:-1], "truncated"), (data[:5], "truncated"), (data + b"\0", "corrupt"),
                        (b"\x10" + data[1:], "corrupt")):
        with pytest.raises(SnapshotRejected) as e:
            decode(bad, FP, s.block_keys, 2)
        assert e.value.reason == reason
    with pytest.raises(SnapshotRejected, match="fingerprint"):
        decode(data, "2" * 32, s.block_keys, 2)
    with pytest.raises(SnapshotRejected, match="chain"):
        decode(data, FP, [b"y" * 16], 2)


def test_tail_window_states_make_a_restore_of_their_block_count_exact(tmp_path):
    s = snap(3, 6)
    carries = [(torch.ones(2), None, None, None), (torch.zeros(2), None, None, None)]
    s.tails = {4: ([torch.full((128, 4), 4.0), torch.full((128, 4), 5.0)], carries),
               5: ([torch.full((128, 4), 6.0), torch.full((128, 4), 7.0)], [(None, None, None, None)] * 2)}
    data = encode(s, FP)
    other = [b"q" * 16] * 2
    part = decode(data, FP, s.block_keys[:4] + other, 2)  # leaves it after 4 blocks: the tail's state at 4
    assert part.num_blocks == 4 and part.has_window and part.rows[0].shape[0] == 4
    assert torch.equal(part.window[1], s.tails[4][0][1]) and torch.equal(part.carries[0][0], torch.ones(2))
    assert not decode(data, FP, s.block_keys[:3] + other, 2).has_window  # no state stored at 3: recomputed
    whole = decode(data, FP, s.block_keys, 2)
    assert whole.has_window and torch.equal(whole.window[0], s.window[0]) and set(whole.tails) == {4, 5}
    store = folder_store(tmp_path)
    store.write(snap(3, 6))  # the same chain without tails: the lookup prefers the one that resumes exactly
    store.write(s)
    assert (store.lookup(s.block_keys[:4] + other).blocks, store.lookup(s.block_keys[:4] + other).exact) == (4, True)
    assert (store.lookup(s.block_keys[:3] + other).blocks, store.lookup(s.block_keys[:3] + other).exact) == (3, False)


def test_eviction_by_age_then_least_recently_used_under_the_lock(tmp_path):
    one = len(encode(snap(1, 4), FP))
    store = folder_store(tmp_path, max_bytes=2 * one + 10, max_age_s=3600)
    names = [store.write(snap(i, 4)) for i in (1, 2, 3, 4)]
    age(tmp_path, names[0], 7200)  # unused for two hours: past the maximum age
    age(tmp_path, names[1], 600)
    age(tmp_path, names[2], 300)
    store._touch(names[1])  # restored just now: its .used marker makes it the most recently used
    age(tmp_path, names[2], 300)
    # another process holds the lock: nothing happens here
    (tmp_path / LOCK).write_text(f"other:1:x {time.time() + 60:.0f}")
    assert store.maintain() == 0 and all((tmp_path / n).exists() for n in names)
    (tmp_path / LOCK).write_text(f"other:1:x {time.time() - 1:.0f}")  # its holder died: the lock expired
    assert store.maintain() == 2
    left = {n for n in names if (tmp_path / n).exists()}
    assert left == {names[1], names[3]}  # names[0] too old, names[2] the least recently used over the cap
    assert not (tmp_path / LOCK).exists() and not (tmp_path / (names[0] + ".used")).exists()
    assert store.stats()["evicted"] == 2


def test_lookup_exact_and_partial_across_the_anchor(tmp_path):
    store = folder_store(tmp_path)
    long, short = snap(7, 20), snap(8, 5)
    store.write(long)
    store.write(short)
    assert "/" + long.block_keys[15].hex() + "/" in store.name_of(long.block_keys)  # anchored at block 16
    assert store.lookup(long.block_keys).exact
    other = [b"z" * 16] * 5
    plan = store.lookup(long.block_keys[:18] + other)  # leaves it at block 18: a partial match, from the header
    assert (plan.blocks, plan.exact) == (18, False)
    assert store.restore(long.block_keys[:18] + other).num_blocks == 18
    assert store.lookup(long.block_keys[:10] + other[:1]) is None  # fewer than 16 shared blocks: not found
    plan = store.lookup(short.block_keys + other)
    assert (plan.blocks, plan.exact) == (5, True)


def test_tags_delete_their_snapshots_only(tmp_path):
    store = folder_store(tmp_path)
    a = store.write(snap(1, 2), tag="t1/doc-a")
    b = store.write(snap(2, 2), tag="t1/doc-b")
    store.write(snap(3, 2), tag="t1/doc-a")
    assert store.delete_tag("t1/doc-a") == 2
    assert not (tmp_path / a).exists() and (tmp_path / b).exists()
    assert store.delete_tag("t1/doc-a") == 0
    with pytest.raises(BadStoreUrl):
        store.delete_tag("")


def test_the_blob_sweep_never_touches_prefixes(tmp_path):
    from pipeline.storage import LocalBlobStore

    blobs = LocalBlobStore(tmp_path)
    ref = blobs.put_bytes("tenant-1", b"a document")
    name = folder_store(tmp_path).write(snap(1, 2), tag="tenant-1/doc")
    from datetime import timedelta

    assert blobs.sweep("tenant-1", set(), min_age=timedelta(0)) == [ref.key]
    assert (tmp_path / name).exists()


@pytest.mark.services
def test_s3_backend_on_moto(moto_endpoint):
    from datetime import timedelta

    from minio import Minio

    from pipeline.storage.s3 import S3BlobStore

    backend = S3Backend(moto_endpoint, "prefix-unit", "testing", "testing", secure=False, timeout_s=10)
    store = PrefixStore(backend, PrefixStoreConfig(f"s3://prefix-unit?endpoint={moto_endpoint}", max_bytes=1),
                        FP, 2, maintain=False)
    s = snap(5, 3)
    name = store.write(s, tag="t/doc")
    assert store.lookup(s.block_keys).blocks == 3
    assert store.restore(s.block_keys).num_blocks == 3
    assert backend.create_exclusive("prefixes/x.lock", b"me") and not backend.create_exclusive("prefixes/x.lock", b"b")
    # the tenant-blob sweep of the same bucket leaves prefixes/ alone
    blobs = S3BlobStore(Minio(moto_endpoint, access_key="testing", secret_key="testing", secure=False), "prefix-unit")
    blobs.put_bytes("tenant-9", b"blob")
    assert len(blobs.sweep("tenant-9", set(), min_age=timedelta(0))) == 1
    assert name in [o.name for o in backend.list(name)]
    assert store.maintain() == 1 and backend.list(name) == []  # over the 1-byte cap


def test_serve_options_and_variables_reach_the_config(monkeypatch):
    """`inference.serve`'s prefix-store options (and their WHOLEDOC_PREFIX_STORE* defaults) become the config."""
    import argparse

    from inference.prefix_store.cli import add_arguments, config_from_args

    def parsed(*argv):
        p = argparse.ArgumentParser()
        add_arguments(p)
        return config_from_args(p.parse_args(argv))

    assert parsed() is None  # no URL: the store is off
    c = parsed("--prefix-store", "file:///tmp/s", "--prefix-store-min-tokens", "256", "--prefix-store-tail-tokens",
               "0", "--prefix-store-max-gib", "2", "--prefix-store-max-age-days", "1",
               "--prefix-store-restore-timeout", "5")
    assert (c.url, c.min_tokens, c.tail_tokens, c.max_bytes, c.max_age_s, c.restore_timeout_s) == (
        "file:///tmp/s", 256, 0, 2 << 30, 86400.0, 5.0)
    assert parsed("--prefix-store", "file:///tmp/s").tail_tokens == 512
    monkeypatch.setenv("WHOLEDOC_PREFIX_STORE", "file:///tmp/e")
    monkeypatch.setenv("WHOLEDOC_PREFIX_STORE_TAIL_TOKENS", "1024")
    c = parsed()
    assert (c.url, c.tail_tokens) == ("file:///tmp/e", 1024)
    with pytest.raises(BadStoreUrl, match="tail_tokens"):
        parsed("--prefix-store", "file:///tmp/s", "--prefix-store-tail-tokens", "-1")
