"""History blocks (ref-counted, content-addressed, LRU-evicted), window slots and checkpoints; no torch.

Data structures, after vLLM's block_pool: `free` (never-hashed blocks, FIFO), `cached` (hashed blocks with ref
count 0 in eviction order, least recently released first) and `by_key` (key -> block id). Window slots serve running
sequences and checkpoints; checkpoints are LRU-evicted when a sequence needs a slot and go with their block."""

import hashlib
from collections import OrderedDict, deque
from dataclasses import dataclass

from inference.model.config import BLOCK_TOKENS


def block_key(parent: bytes | None, token_ids: list[int] | tuple[int, ...], salt: bytes = b"") -> bytes:
    """Chained key of one full history block: hash(parent key, its 128 token ids, salt = model/dtype/numerics)."""
    h = hashlib.blake2b(digest_size=16)
    h.update(parent or b"\0" * 16)
    h.update(salt)
    h.update(b",".join(str(t).encode() for t in token_ids))
    return h.digest()


def salt_root(cache_salt: str | None) -> bytes | None:
    """Parent key of a request's first block: None for the unsalted chain, else a hash of its cache_salt.

    NOTE: every later key chains on the first, so one root separates a salt's whole chain (vLLM's cache_salt):
    requests with different salts (or none) never share a block, a hit or a checkpoint."""
    if cache_salt is None:
        return None
    return hashlib.blake2b(b"cache_salt\0" + cache_salt.encode(), digest_size=16).digest()


@dataclass
class Block:
    block_id: int
    ref_count: int = 0
    key: bytes | None = None
    token_ids: tuple[int, ...] | None = None  # checked on every hit
    checkpoint: int | None = None  # window slot holding the checkpoint at this block's end


class BlockManager:
    """Allocates history blocks and window slots; finds and verifies prefix hits; evicts LRU unreferenced blocks."""

    def __init__(self, num_blocks: int, num_window_slots: int, salt: bytes = b"", max_checkpoints: int | None = None):
        self.blocks = [Block(i) for i in range(num_blocks)]
        self.free: deque[int] = deque(range(num_blocks))
        self.cached: OrderedDict[int, None] = OrderedDict()
        self.by_key: dict[bytes, int] = {}
        self.free_slots: deque[int] = deque(range(num_window_slots))
        self.checkpoints: OrderedDict[int, int] = OrderedDict()  # slot -> block id, least recently used first
        self.max_checkpoints = num_window_slots if max_checkpoints is None else max_checkpoints
        self.salt = salt
        self.evicted: list[int] = []  # block ids in eviction order (observability and tests)
        self.on_evict = None  # called with a keyed block's id just before it is reused (its rows still intact)

    ##### history blocks #####

    @property
    def num_blocks(self) -> int:
        return len(self.blocks)

    @property
    def num_free_blocks(self) -> int:
        """Blocks an allocation can get: never-hashed free ones plus unreferenced cached ones."""
        return len(self.free) + len(self.cached)

    def allocate(self) -> int | None:
        """A block with ref count 1: a free one first, else the least recently released cached one (evicted)."""
        if self.free:
            bid = self.free.popleft()
        elif self.cached:
            bid, _ = self.cached.popitem(last=False)
            if self.on_evict is not None:
                self.on_evict(bid)
            self._forget(bid)
            self.evicted.append(bid)
        else:
            return None
        self.blocks[bid].ref_count = 1
        return bid

    def acquire(self, block_ids: list[int]) -> None:
        """Take a reference on hit blocks (they leave the eviction queue)."""
        for bid in block_ids:
            b = self.blocks[bid]
            if b.ref_count == 0:
                self.cached.pop(bid, None)
            b.ref_count += 1

    def release(self, block_ids: list[int]) -> None:
        """Drop a reference; pass a sequence's blocks in reverse so its tail is evicted before its head."""
        for bid in block_ids:
            b = self.blocks[bid]
            b.ref_count -= 1
            assert b.ref_count >= 0, f"block {bid} released more often than acquired"
            if b.ref_count == 0:
                if b.key is None:
                    self.free.append(bid)
                else:
                    self.cached[bid] = None

    def register(self, block_id: int, parent: bytes | None, token_ids: list[int]) -> bytes:
        """Key a just-filled block; if another block already has the key, that one stays the cached copy."""
        assert len(token_ids) == BLOCK_TOKENS
        key = block_key(parent, token_ids, self.salt)
        b = self.blocks[block_id]
        if key not in self.by_key:
            self.by_key[key] = block_id
            b.key, b.token_ids = key, tuple(token_ids)
        return key

    def match(self, token_ids: list[int], max_blocks: int, root: bytes | None = None
              ) -> tuple[list[int], list[bytes]]:
        """Leading full blocks of token_ids found in the cache (verified), with their keys; no side effects.
        `root` is the chain's first parent (salt_root of the request's cache_salt)."""
        hits, keys, parent = [], [], root
        for i in range(min(max_blocks, len(token_ids) // BLOCK_TOKENS)):
            chunk = tuple(token_ids[i * BLOCK_TOKENS : (i + 1) * BLOCK_TOKENS])
            key = block_key(parent, chunk, self.salt)
            bid = self.by_key.get(key)
            if bid is None or self.blocks[bid].token_ids != chunk:
                break
            hits.append(bid)
            keys.append(key)
            parent = key
        return hits, keys

    def _forget(self, bid: int) -> None:
        b = self.blocks[bid]
        if b.key is not None and self.by_key.get(b.key) == bid:
            del self.by_key[b.key]
        if b.checkpoint is not None:
            self.checkpoints.pop(b.checkpoint, None)
            self.free_slots.append(b.checkpoint)
        b.key, b.token_ids, b.checkpoint = None, None, None

    ##### window slots and checkpoints #####

    @property
    def num_free_slots(self) -> int:
        return len(self.free_slots) + len(self.checkpoints)

    def allocate_slot(self, for_checkpoint: bool = False) -> int | None:
        """A window slot: a free one, else (for sequences only) the least recently used checkpoint's."""
        if self.free_slots:
            return self.free_slots.popleft()
        if for_checkpoint or not self.checkpoints:
            return None
        slot, bid = self.checkpoints.popitem(last=False)
        self.blocks[bid].checkpoint = None
        return slot

    def free_slot(self, slot: int) -> None:
        self.free_slots.append(slot)

    def add_checkpoint(self, block_id: int) -> int | None:
        """A slot for the checkpoint at the end of a keyed block (None: no room, or it has one already)."""
        b = self.blocks[block_id]
        if b.key is None or b.checkpoint is not None:
            return None
        if self.max_checkpoints == 0:
            return None
        slot = self.allocate_slot(for_checkpoint=True) if len(self.checkpoints) < self.max_checkpoints else None
        if slot is None and self.checkpoints:  # replace the least recently used checkpoint
            slot, old = self.checkpoints.popitem(last=False)
            self.blocks[old].checkpoint = None
        if slot is None:
            return None
        b.checkpoint = slot
        self.checkpoints[slot] = block_id
        return slot

    def use_checkpoint(self, block_id: int) -> int | None:
        """The checkpoint slot at the end of this block, marked recently used."""
        slot = self.blocks[block_id].checkpoint
        if slot is not None:
            self.checkpoints.move_to_end(slot)
        return slot
