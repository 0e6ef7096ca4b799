"""The engine's side of the prefix store (docs/prefix-store.md): start restores when a request arrives, install
finished ones into the pools between steps, and hand snapshots of freshly prefilled prefixes to the store.

Runs on the engine thread only and never waits on the store: lookups, reads and uploads are the store's threads'.
A request whose restore is pending stays in the waiting queue (skipped by admission) until its future is done or
`restore_timeout_s` passes; then it is admitted with whatever the cache holds, restored or not."""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from concurrent.futures import FIRST_COMPLETED, wait
from dataclasses import dataclass

import torch

from inference.model.config import BLOCK_TOKENS

log = logging.getLogger("inference.engine")
SKIP_AFTER_TIMEOUT_S = 30.0  # after a restore timeout, new requests skip the store this long (a hung bucket)


@dataclass
class PendingRestore:
    future: object  # concurrent.futures.Future[Snapshot | None]
    deadline: float
    have_blocks: int  # blocks memory held when the lookup started


class _Recent(OrderedDict):
    """A set that forgets its oldest members past `limit` (a long-running server sees millions of prefixes)."""

    def __init__(self, limit: int):
        super().__init__()
        self.limit = limit

    def add(self, key: bytes) -> None:
        self[key] = None
        self.move_to_end(key)
        if len(self) > self.limit:
            self.popitem(last=False)


def _clone_carry(cs) -> tuple:
    if cs is None or cs.carry_kv is None:
        return (None, None)
    return (cs.carry_kv.detach().clone().cpu(), cs.carry_score.detach().clone().cpu())


class SnapshotHooks:
    """Owned by an Engine; `store` is an inference.prefix_store.PrefixStore."""

    def __init__(self, engine, store):
        self.engine, self.store = engine, store
        self.blocks, self.pools, self.scheduler = engine.blocks, engine.pools, engine.scheduler
        self.pending: list = []  # sequences with a restore in flight
        self.written = _Recent(100_000)  # last block keys of snapshots this process wrote or restored whole
        self.restore_timeouts = 0
        self.lookups_skipped = 0  # requests that did not wait for the store while it was marked unresponsive
        self._skip_until = 0.0  # after a restore timed out: no lookups (requests compute) until then
        # writes the upload queue had no room for: by reference while their blocks are in memory (chain keys, tag),
        # copied out when one of their blocks is about to be evicted, submitted when the queue has room again
        self.deferred: OrderedDict[bytes, tuple[list[bytes], str | None]] = OrderedDict()
        self.copied: OrderedDict[bytes, tuple[object, str | None]] = OrderedDict()
        # per request: (tail block counts this asked the engine to checkpoint, window states captured there), kept
        # until the snapshot at the prompt's last full block takes them along
        self.tails: OrderedDict[str, tuple[set[int], dict[int, tuple]]] = OrderedDict()
        self.blocks.on_evict = self._before_evict
        # a parallel engine (docs/parallel.md): after an install, every other rank's pools get the same contents
        self.replicate = getattr(engine.runner, "replicate_restore", None)

    @property
    def min_tokens(self) -> int:
        return self.store.config.min_tokens

    ##### restores #####

    def chain_keys(self, token_ids: list[int], root: bytes | None) -> list[bytes]:
        """Keys of the blocks a request with these tokens could take from a cache (the last token is computed)."""
        from inference.engine.block_manager import block_key

        keys, parent = [], root
        for i in range((len(token_ids) - 1) // BLOCK_TOKENS):
            parent = block_key(parent, token_ids[i * BLOCK_TOKENS : (i + 1) * BLOCK_TOKENS], self.blocks.salt)
            keys.append(parent)
        return keys

    def _memory_blocks(self, keys: list[bytes]) -> int:
        m = 0
        while m < len(keys) and keys[m] in self.blocks.by_key:
            m += 1
        return m

    def on_add(self, seq) -> None:
        """A new request: look for a stored prefix longer than what memory holds (in the background)."""
        limit = (len(seq.prompt_ids) - 1) // BLOCK_TOKENS
        if limit * BLOCK_TOKENS < max(BLOCK_TOKENS, self.min_tokens):  # nothing this short is stored
            return
        all_keys = self.scheduler.block_keys_of(seq)
        self._plan_tails(seq, all_keys)
        keys = all_keys[:limit]
        m = self._memory_blocks(keys)
        if m == limit:
            return
        if time.monotonic() < self._skip_until:  # the store just let a request wait out its timeout: don't wait again
            self.lookups_skipped += 1
            return
        seq.restore = PendingRestore(self.store.submit_restore(keys, m),
                                     time.monotonic() + self.store.config.restore_timeout_s, m)
        self.pending.append(seq)

    def _plan_tails(self, seq, keys: list[bytes]) -> None:
        """Ask the engine for the exact window state at the block boundaries of the prompt's last `tail_tokens`
        tokens, where another request about the same document leaves it (its own task or question follows the
        document): the snapshot written at the prompt's last full block keeps them (docs/prefix-store.md)."""
        n, last = len(seq.prompt_ids), len(seq.prompt_ids) // BLOCK_TOKENS
        tail = self.store.config.tail_tokens
        if not tail or last < 2 or len(keys) < last or keys[last - 1] in self.written:
            return
        first = max(1, -(-(n - tail) // BLOCK_TOKENS), -(-self.min_tokens // BLOCK_TOKENS))
        wanted = {k for k in range(first, last) if k not in seq.wanted_checkpoints}
        if not wanted:
            return
        seq.wanted_checkpoints.update(wanted)  # the scheduler stops prefill chunks there, the engine checkpoints
        self.tails[seq.request_id] = (wanted, {})
        while len(self.tails) > 256:  # requests that never reached their last block (aborted, preempted)
            self.tails.popitem(last=False)

    def poll(self) -> None:
        """Between steps: install finished restores; give up on late ones (the request then computes its prefix);
        hand deferred snapshots to the store once its upload queue has room."""
        if self.deferred or self.copied:
            self._submit_deferred()
        if not self.pending:
            return
        now, still = time.monotonic(), []
        for seq in self.pending:
            p = seq.restore
            if seq.is_finished or p is None:
                seq.restore = None
                self.release_pins(seq)
                continue
            if p.future.done():
                seq.restore = None
                try:
                    snap = p.future.result()
                except Exception:
                    log.exception("prefix restore failed; computing the prefix")
                    snap = None
                if snap is not None:
                    self._install(seq, snap, p.have_blocks)
            elif now >= p.deadline:
                seq.restore = None
                p.future.cancel()
                self.restore_timeouts += 1
                self._skip_until = now + SKIP_AFTER_TIMEOUT_S
                log.warning("prefix restore for %s took over %.0f s; computing the prefix", seq.request_id,
                            self.store.config.restore_timeout_s)
            else:
                still.append(seq)
        self.pending = still

    def wait_briefly(self, timeout: float = 0.05) -> None:
        """Nothing to step but restores in flight: wait a little for one (no busy loop)."""
        futures = [s.restore.future for s in self.pending if s.restore is not None]
        if futures:
            wait(futures, timeout=timeout, return_when=FIRST_COMPLETED)

    def _install(self, seq, snap, have_blocks: int) -> None:
        """Copy a restored snapshot's blocks into the pools as cached, keyed blocks (pinned for `seq` until it is
        admitted), with its window state as a checkpoint when it has one."""
        keys = snap.block_keys
        if keys != self.scheduler.block_keys_of(seq)[: len(keys)]:
            log.warning("a restored snapshot does not match request %s's chain; ignored", seq.request_id)
            return
        pins, fresh, parent = [], [], seq.cache_root
        for i, key in enumerate(keys):
            tokens = seq.tokens(i * BLOCK_TOKENS, (i + 1) * BLOCK_TOKENS)
            bid = self.blocks.by_key.get(key)
            if bid is not None and self.blocks.blocks[bid].token_ids == tuple(tokens):
                self.blocks.acquire([bid])
            else:
                bid = self.blocks.allocate()
                if bid is None:
                    break
                if self.blocks.register(bid, parent, tokens) != key or self.blocks.by_key.get(key) != bid:
                    self.blocks.release([bid])
                    break
                fresh.append((i, bid))
            pins.append(bid)
            parent = key
        if fresh:
            src = torch.tensor([i for i, _ in fresh])
            dst = torch.tensor([b for _, b in fresh], device=self.pools.device)
            for pool, stored in zip(self.pools.rows + self.pools.keys, snap.rows + snap.keys):
                if pool is not None and stored is not None:
                    pool[dst] = stored[src].to(device=pool.device, dtype=pool.dtype)
        seq.restore_pins = pins
        seq.restored_from = have_blocks * BLOCK_TOKENS
        n, slot = len(pins), None
        if n == len(keys) and snap.has_window:
            slot = self.blocks.add_checkpoint(pins[-1])
            if slot is not None:
                for pool, w in zip(self.pools.window, snap.window):
                    pool[slot].copy_(w.to(device=pool.device, dtype=pool.dtype))
                dev = self.pools.device
                self.pools.carries[slot] = [tuple(None if t is None else t.to(dev) for t in c) for c in snap.carries]
            self.written.add(keys[-1])
        elif n:
            seq.wanted_checkpoints.add(n)  # snapshot the state where this request leaves the stored prefix
        if self.replicate is not None:  # before the next step reads them, on every rank
            self.replicate([b for _, b in fresh], slot)
        log.info("request %s: %d blocks restored (%d new in memory, window state: %s)", seq.request_id, n,
                 len(fresh), snap.has_window and n == len(keys))

    def release_pins(self, seq) -> None:
        if seq.restore_pins:
            self.blocks.release(seq.restore_pins[::-1])
            seq.restore_pins = []

    ##### writes #####

    def at_boundary(self, seq, pos: int) -> None:
        """The engine holds seq's exact state at block boundary `pos` (a checkpoint position): write a snapshot
        there if it is the prompt's last full block or a divergence point, and long enough."""
        k, last = pos // BLOCK_TOKENS, len(seq.prompt_ids) // BLOCK_TOKENS
        if pos < self.min_tokens or pos > len(seq.prompt_ids):
            return
        tail = self.tails.get(seq.request_id)
        if tail is not None and k in tail[0] and k != last:  # kept for the snapshot at the last block
            tail[1][k] = self._window_now(seq)
            return
        if k != last and k not in seq.wanted_checkpoints:
            return
        tails = {}
        if tail is not None and k == last:
            # taken, but the entry stays (bounded): a preempted request's recompute writes no tail-block snapshots
            tails = dict(tail[1])
            tail[1].clear()
        keys = seq.block_keys[:k]
        if len(keys) < k or keys[-1] in self.written:
            return
        if self.store.pending_writes() >= self.store.config.max_pending_writes:
            self._defer(list(keys), seq.prefix_tag)  # its blocks stay in memory; copied out before eviction
            return
        st = seq.state  # copied to the host only for a write that goes out now
        snap = self._gather(st.block_table[:k], list(keys), self._window_now(seq))
        snap.tails = {j: w for j, w in tails.items() if j < k}
        self._submit(snap, seq.prefix_tag)

    def _window_now(self, seq) -> tuple:
        """seq's window state (rings, carries) as it is now, copied to the host."""
        st = seq.state
        return ([w[st.slot].clone().cpu() for w in self.pools.window],
                [_clone_carry(ls.compressor) + _clone_carry(ls.indexer) for ls in st.layers])

    def _gather(self, block_ids: list[int], keys: list[bytes], window: tuple | None):
        """A Snapshot of these pool blocks (a copy), with window state (rings, carries) when given."""
        from inference.prefix_store.snapshot import Snapshot

        bids = torch.tensor(block_ids, device=self.pools.device)
        take = lambda pool: None if pool is None else pool[bids].cpu()
        return Snapshot(list(keys), [take(p) for p in self.pools.rows], [take(p) for p in self.pools.keys],
                        *(window if window is not None else (None, None)))

    def _submit(self, snap, tag: str | None) -> bool:
        if self.store.submit_write(snap, tag):
            self.written.add(snap.block_keys[-1])
            return True
        return False

    def _defer(self, keys: list[bytes], tag: str | None) -> None:
        self.deferred[keys[-1]] = (keys, tag)
        self.deferred.move_to_end(keys[-1])
        while len(self.deferred) > 4 * self.store.config.max_pending_writes:
            self.deferred.popitem(last=False)
            self.store.count("writes_dropped")

    def _in_memory(self, keys: list[bytes]) -> list[int] | None:
        ids = [self.blocks.by_key.get(k) for k in keys]
        return None if any(b is None for b in ids) else ids

    def _window_of(self, block_id: int) -> tuple | None:
        """The checkpoint at the end of this block as snapshot window state, if it still has one."""
        slot = self.blocks.blocks[block_id].checkpoint
        if slot is None or slot not in self.pools.carries:
            return None
        return ([w[slot].clone().cpu() for w in self.pools.window],
                [tuple(None if t is None else t.clone().cpu() for t in c) for c in self.pools.carries[slot]])

    def _before_evict(self, block_id: int) -> None:
        """A cached block is about to be reused: copy out every deferred snapshot it belongs to (bounded)."""
        key = self.blocks.blocks[block_id].key
        for last, (keys, tag) in list(self.deferred.items()):
            if key not in keys:
                continue
            del self.deferred[last]
            ids = self._in_memory(keys)
            if ids is None:
                self.store.count("writes_dropped")
                continue
            self.copied[last] = (self._gather(ids, keys, self._window_of(ids[-1])), tag)
            while len(self.copied) > self.store.config.max_pending_writes:
                self.copied.popitem(last=False)
                self.store.count("writes_dropped")

    def _submit_deferred(self) -> None:
        room = self.store.config.max_pending_writes - self.store.pending_writes()
        while room > 0 and self.copied:
            _, (snap, tag) = self.copied.popitem(last=False)
            self._submit(snap, tag)
            room -= 1
        while room > 0 and self.deferred:
            _, (keys, tag) = self.deferred.popitem(last=False)
            ids = self._in_memory(keys)
            if ids is None:
                self.store.count("writes_dropped")
                continue
            self._submit(self._gather(ids, keys, self._window_of(ids[-1])), tag)
            room -= 1

    ##### probe (any thread: reads only the immutable salt and the store) #####

    def probe_tokens(self, token_ids: list[int], cache_salt: str | None, memory_tokens: int) -> int:
        """cached_tokens a request would get once a restore is counted: a whole snapshot resumes at its end, a
        partial one behind its trailing window (as a memory hit without checkpoint)."""
        from inference.engine.block_manager import salt_root

        if (len(token_ids) - 1) // BLOCK_TOKENS * BLOCK_TOKENS < max(BLOCK_TOKENS, self.min_tokens):
            return memory_tokens
        if time.monotonic() < self._skip_until:  # the store is marked unresponsive: a request would not wait either
            return memory_tokens
        plan = self.store.probe(self.chain_keys(list(token_ids), salt_root(cache_salt)))
        if plan is None:
            return memory_tokens
        if plan.exact:
            restored = plan.blocks * BLOCK_TOKENS
        else:
            restored = max(0, (plan.blocks - self.pools.layout.num_layers) * BLOCK_TOKENS)
        return max(memory_tokens, restored)
