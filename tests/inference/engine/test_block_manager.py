"""BlockManager: exact block ids on allocation, verified prefix hits, LRU eviction order, checkpoint slots."""

from inference.engine.block_manager import BlockManager, block_key, salt_root

B = 128


def toks(*block_seeds: int) -> list[int]:
    """One 128-token block per seed, distinct per seed."""
    return [s * 1000 + i for s in block_seeds for i in range(B)]


def fill(bm: BlockManager, tokens: list[int], root: bytes | None = None) -> tuple[list[int], list[bytes]]:
    """Allocate and register one block per full 128 tokens, like a sequence that prefilled them."""
    ids, keys, parent = [], [], root
    for i in range(len(tokens) // B):
        bid = bm.allocate()
        parent = bm.register(bid, parent, tokens[i * B : (i + 1) * B])
        ids.append(bid)
        keys.append(parent)
    return ids, keys


def test_allocation_order_and_exact_hits():
    bm = BlockManager(num_blocks=8, num_window_slots=2)
    ids, keys = fill(bm, toks(1, 2, 3))
    assert ids == [0, 1, 2]
    assert bm.match(toks(1, 2, 3, 4), 4) == ([0, 1, 2], keys)
    assert bm.match(toks(1, 2, 9), 3)[0] == [0, 1]  # miss at the third block
    assert bm.match(toks(9, 2, 3), 3)[0] == []  # chained: a different first block hides the rest
    assert bm.match(toks(1, 2, 3), 2)[0] == [0, 1]  # max_blocks caps the hit
    assert bm.match(toks(1)[:127], 1)[0] == []  # only full blocks are keyed


def test_hit_is_verified_against_token_ids():
    bm = BlockManager(num_blocks=4, num_window_slots=1)
    fill(bm, toks(1, 2))
    key0 = block_key(None, toks(1), bm.salt)
    bm.by_key[key0] = 1  # a corrupted map entry must not produce a hit
    assert bm.match(toks(1, 2), 2)[0] == []


def test_salt_separates_models():
    a, b = BlockManager(4, 1, salt=b"m1|float32"), BlockManager(4, 1, salt=b"m2|float32")
    fill(a, toks(1))
    assert block_key(None, toks(1), a.salt) != block_key(None, toks(1), b.salt)
    b.by_key.update(a.by_key)
    b.blocks[0].token_ids = a.blocks[0].token_ids
    assert b.match(toks(1), 1)[0] == []


def test_cache_salt_roots_separate_chains():
    """Per-request cache_salt: one root per salt; the same tokens under another salt (or none) never hit."""
    a, b = salt_root("tenant-a"), salt_root("tenant-b")
    assert salt_root(None) is None and None not in (a, b) and a != b and a == salt_root("tenant-a")
    bm = BlockManager(num_blocks=8, num_window_slots=1)
    ids, keys = fill(bm, toks(1, 2), root=a)
    assert bm.match(toks(1, 2, 3), 3, a) == (ids, keys)
    assert bm.match(toks(1, 2, 3), 3, b) == ([], []) and bm.match(toks(1, 2, 3), 3) == ([], [])
    plain, _ = fill(bm, toks(1, 2))  # the unsalted copy is a block of its own, not a duplicate of a's
    assert plain == [2, 3] and bm.match(toks(1, 2), 2)[0] == plain and bm.match(toks(1, 2), 2, a)[0] == ids


def test_lru_eviction_order_tail_first():
    bm = BlockManager(num_blocks=6, num_window_slots=1)
    a, _ = fill(bm, toks(1, 2, 3))  # blocks 0,1,2
    b, _ = fill(bm, toks(4, 5))  # blocks 3,4
    bm.release(a[::-1])  # a's tail first: eviction order 2, 1, 0
    bm.release(b[::-1])  # then 4, 3
    assert bm.num_free_blocks == 6
    got = [bm.allocate() for _ in range(6)]
    assert got == [5, 2, 1, 0, 4, 3]  # the never-used block first, then LRU over cached blocks
    assert bm.evicted == [2, 1, 0, 4, 3]
    assert bm.allocate() is None
    assert bm.match(toks(1), 1)[0] == []  # evicted blocks no longer hit


def test_hit_refreshes_lru_and_referenced_blocks_are_never_evicted():
    bm = BlockManager(num_blocks=4, num_window_slots=1)
    a, _ = fill(bm, toks(1, 2))  # 0, 1
    b, _ = fill(bm, toks(3, 4))  # 2, 3
    bm.release(a[::-1])
    bm.release(b[::-1])  # cached order 1, 0, 3, 2
    hit, _ = bm.match(toks(1, 2), 2)
    bm.acquire(hit)  # blocks 0 and 1 are in use again
    assert [bm.allocate(), bm.allocate(), bm.allocate()] == [3, 2, None]
    bm.release(hit[::-1])
    assert [bm.allocate(), bm.allocate()] == [1, 0]


def test_duplicate_content_keeps_first_copy_and_frees_second():
    bm = BlockManager(num_blocks=4, num_window_slots=1)
    first, _ = fill(bm, toks(7))
    second, _ = fill(bm, toks(7))
    assert (first, second) == ([0], [1])
    assert bm.match(toks(7), 1)[0] == [0]
    bm.release(second)
    assert list(bm.free) == [2, 3, 1]  # unkeyed copy goes back to the free list, not the cache
    bm.release(first)
    assert list(bm.cached) == [0]


def test_checkpoints_live_in_window_slots_and_go_with_their_block():
    bm = BlockManager(num_blocks=3, num_window_slots=3)
    seq_slot = bm.allocate_slot()
    ids, _ = fill(bm, toks(1, 2))
    assert (seq_slot, bm.add_checkpoint(ids[0]), bm.add_checkpoint(ids[1])) == (0, 1, 2)
    assert bm.add_checkpoint(ids[1]) is None  # already has one
    assert bm.allocate_slot(for_checkpoint=True) is None
    bm.use_checkpoint(ids[0])  # slot 1 becomes most recently used
    assert bm.allocate_slot() == 2  # a sequence takes the least recently used checkpoint's slot
    assert bm.blocks[ids[1]].checkpoint is None and bm.blocks[ids[0]].checkpoint == 1
    bm.release(ids[::-1])
    bm.allocate()  # free block 2
    assert bm.allocate() == ids[1]  # evicts block 1 (tail), no checkpoint
    assert bm.allocate() == ids[0]  # evicts block 0 and its checkpoint slot
    assert list(bm.free_slots) == [1]
    assert bm.checkpoints == {}
