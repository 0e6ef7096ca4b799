"""Continuous batching: decodes first, then prefill chunks (shortest remaining first), then admissions.

Every step is bounded by the token budget; prefill chunks end on checkpoint boundaries; when history blocks run out
the most recently admitted other sequence is preempted (recompute: its full blocks stay cached for its return).

Requests that share a prefix with one being prefilled right now (bulk Q&A: many questions about one document,
submitted at once) wait until that prefill has written the shared blocks, then start from them; the prefill takes a
window checkpoint where they diverge, so they resume with nothing recomputed. The document is prefilled once."""

from collections import deque

from inference.engine.block_manager import BlockManager, block_key
from inference.engine.config import EngineConfig
from inference.engine.paged_state import PagedState
from inference.engine.pools import CachePools
from inference.engine.sequence import Sequence, Status
from inference.model.config import BLOCK_TOKENS


class Scheduler:
    """Owns the waiting queue, the running list and the cache bookkeeping of every sequence."""

    def __init__(self, config: EngineConfig, blocks: BlockManager, pools: CachePools):
        self.config, self.blocks, self.pools = config, blocks, pools
        self.num_layers = pools.layout.num_layers
        self.waiting: deque[Sequence] = deque()
        self.running: list[Sequence] = []
        self.num_preemptions = 0
        self.hit_tokens = self.query_tokens = 0
        self.restored_tokens = self.recomputed_tokens = 0  # of hit_tokens: from the prefix store; behind hits

    ##### prefix cache #####

    def plan_hit(self, token_ids: list[int], root: bytes | None = None
                 ) -> tuple[list[int], list[bytes], int, int | None]:
        """(hit blocks, their keys, position to resume from, checkpoint slot to load) for a prompt whose block
        chain starts at `root` (its cache salt's); no side effects."""
        hits, keys = self.blocks.match(token_ids, (len(token_ids) - 1) // BLOCK_TOKENS, root)
        n = len(hits)
        start, slot = max(0, BLOCK_TOKENS * (n - self.num_layers)), None
        for j in range(n, 0, -1):  # the latest checkpoint inside the hit that beats the recompute start
            if j * BLOCK_TOKENS <= start:
                break
            if self.blocks.blocks[hits[j - 1]].checkpoint is not None:
                start, slot = j * BLOCK_TOKENS, self.blocks.blocks[hits[j - 1]].checkpoint
                break
        return hits, keys, start, slot

    def _admit(self, seq: Sequence) -> bool:
        """Give a waiting sequence a window slot, its prefix hit and a fresh state; False if there is no room."""
        tokens = seq.token_ids
        hits, keys, start, ckpt = self.plan_hit(tokens, seq.cache_root)
        self.blocks.acquire(hits)
        slot = self.blocks.allocate_slot() if self.blocks.num_free_blocks else None
        if slot is None:
            self.blocks.release(hits[::-1])
            return False
        if ckpt is not None and self.blocks.blocks[hits[start // BLOCK_TOKENS - 1]].checkpoint != ckpt:
            ckpt = None  # our own slot allocation evicted it: fall back to recompute
            start = max(0, BLOCK_TOKENS * (len(hits) - self.num_layers))
        state = PagedState(self.pools, slot, start, len(hits) * BLOCK_TOKENS)
        state.set_blocks(hits)
        if ckpt is not None:
            self.blocks.use_checkpoint(hits[start // BLOCK_TOKENS - 1])
            state.load_checkpoint(ckpt)
        elif start > 0:  # recompute from an unknown window: exact again only at the end of the hit
            state.exact_from = len(hits) * BLOCK_TOKENS
        seq.state, seq.block_keys = state, keys
        if seq.restore_pins:  # restored blocks (snapshot_hooks): our own references hold them now
            self.blocks.release(seq.restore_pins[::-1])
            seq.restore_pins = []
        if seq.num_preemptions == 0:
            seq.cached_tokens = start
            self.hit_tokens += start
            self.query_tokens += len(tokens)
            self.recomputed_tokens += len(hits) * BLOCK_TOKENS - start
            if seq.restored_from is not None:
                self.restored_tokens += max(0, start - seq.restored_from)
        seq.prompt_done = max(seq.prompt_done, min(start, len(seq.prompt_ids)))
        seq.status = Status.PREFILLING
        return True

    ##### blocks #####

    def _ensure_blocks(self, seq: Sequence, upto: int, scheduled: list) -> bool:
        """Blocks covering positions < upto, preempting later sequences if needed; False if seq itself lost."""
        while len(seq.block_table) * BLOCK_TOKENS < upto:
            bid = self.blocks.allocate()
            if bid is None:
                victims = [s for s in self.running if s is not seq]
                victim = victims[-1] if victims else seq
                self.preempt(victim, scheduled)
                if victim is seq:
                    return False
                continue
            seq.state.set_blocks(seq.block_table + [bid])
        return True

    def release(self, seq: Sequence) -> None:
        """Return a sequence's blocks (tail first) and window slot."""
        if seq.state is None:
            return
        self.blocks.release(seq.block_table[::-1])
        self.blocks.free_slot(seq.state.slot)
        seq.state = None

    def preempt(self, seq: Sequence, scheduled: list) -> None:
        """Recompute preemption: back to the front of the waiting queue, blocks released."""
        self.release(seq)
        self.running.remove(seq)
        scheduled[:] = [(s, n) for s, n in scheduled if s is not seq]
        seq.status, seq.block_keys = Status.WAITING, []
        seq.num_preemptions += 1
        self.num_preemptions += 1
        self.waiting.appendleft(seq)

    ##### scheduling #####

    def checkpoint_at(self, seq: Sequence, pos: int) -> bool:
        """Whether the engine snapshots the window at block boundary pos (prompt's last full block, every N, and
        where requests waiting on this prefill diverge from it)."""
        if pos == 0 or pos % BLOCK_TOKENS or pos > len(seq.prompt_ids) or pos < seq.state.exact_from:
            return False
        k = pos // BLOCK_TOKENS
        return (k == len(seq.prompt_ids) // BLOCK_TOKENS or k % self.config.checkpoint_every_blocks == 0
                or k in seq.wanted_checkpoints)

    ##### prefix sharing with running prefills #####

    def block_keys_of(self, seq: Sequence) -> list[bytes]:
        """Chained keys of all full blocks of seq's tokens (computed once, extended when the sequence grows)."""
        keys, n = seq.full_block_keys, seq.num_tokens // BLOCK_TOKENS
        for i in range(len(keys), n):
            keys.append(block_key(keys[-1] if keys else seq.cache_root,
                                  seq.tokens(i * BLOCK_TOKENS, (i + 1) * BLOCK_TOKENS), self.blocks.salt))
        return keys

    def _pending_blocks(self) -> dict[bytes, tuple[Sequence, int]]:
        """Key -> (running prefill, block index) of every full block a running prefill will write but has not yet."""
        pending = {}
        for seq in self.running:
            if seq.status == Status.PREFILLING:
                keys = self.block_keys_of(seq)
                for i in range(len(seq.block_keys), len(keys)):
                    pending.setdefault(keys[i], (seq, i))
        return pending

    def _waits_for_prefill(self, seq: Sequence, pending: dict) -> bool:
        """True if a running prefill is about to write seq's next uncached block: seq should wait for it (and that
        prefill is asked for a checkpoint where the two diverge)."""
        limit = (seq.num_tokens - 1) // BLOCK_TOKENS  # the last position is always computed
        keys, n = self.block_keys_of(seq), 0
        while n < limit and keys[n] in self.blocks.by_key:  # cached already (admission verifies the tokens)
            n += 1
        if n >= limit:
            return False
        leader, i = pending.get(keys[n], (None, 0))
        if leader is None:
            return False
        lead_keys = self.block_keys_of(leader)
        while n < limit and i < len(lead_keys) and keys[n] == lead_keys[i]:
            n, i = n + 1, i + 1
        leader.wanted_checkpoints.add(i)
        return True

    def _chunk(self, seq: Sequence, budget: int) -> int:
        done, target = seq.num_computed, seq.num_tokens
        end = min(target, done + budget)
        for pos in range((done // BLOCK_TOKENS + 1) * BLOCK_TOKENS, end, BLOCK_TOKENS):
            if self.checkpoint_at(seq, pos):  # stop here so the state at pos can be snapshotted
                return pos - done
        return end - done

    def schedule(self) -> list[tuple[Sequence, int]]:
        """This step's work: (sequence, number of tokens to run), at most max_num_batched_tokens in total."""
        budget, scheduled = self.config.max_num_batched_tokens, []
        for seq in [s for s in self.running if s.status == Status.DECODING]:
            if budget == 0:
                break
            if seq in self.running and self._ensure_blocks(seq, seq.num_computed + 1, scheduled):
                scheduled.append((seq, 1))
                budget -= 1
        self._admit_waiting(budget)
        prefilling = sorted((s for s in self.running if s.status == Status.PREFILLING),
                            key=lambda s: (s.num_tokens - s.num_computed, s.arrival))
        for seq in prefilling:  # shortest remaining first: a short request is not stuck behind a 1M-token one
            if budget == 0:
                break
            if seq not in self.running:  # preempted for an earlier one's blocks in this step: no state to plan on
                continue
            n = self._chunk(seq, budget)
            if self._ensure_blocks(seq, seq.num_computed + n, scheduled):
                scheduled.append((seq, n))
                budget -= n
        return scheduled

    def _admit_waiting(self, budget: int) -> None:
        """Move waiting sequences to running while there are seats, a window slot and blocks for a first chunk.
        One whose prefix a running prefill is writing stays waiting (in its place) and the next one is tried."""
        held, pending = [], None
        try:
            while self.waiting and budget > 0 and len(self.running) < self.config.max_num_seqs:
                seq = self.waiting[0]
                if seq.restore is not None:  # its stored prefix is being read (snapshot_hooks): not yet
                    held.append(self.waiting.popleft())
                    continue
                if any(s.status == Status.PREFILLING for s in self.running):
                    pending = self._pending_blocks() if pending is None else pending
                    if self._waits_for_prefill(seq, pending):
                        held.append(self.waiting.popleft())
                        continue
                if not self._admit(seq):
                    return
                pending = None  # the admitted one may be the prefill that later ones wait for
                self.waiting.popleft()
                self.running.append(seq)
                n = self._chunk(seq, budget)
                need = -(-(seq.num_computed + n) // BLOCK_TOKENS) - len(seq.block_table)
                if need > self.blocks.num_free_blocks:  # never preempt running work to admit more
                    self.preempt(seq, [])
                    seq.num_preemptions -= 1
                    self.num_preemptions -= 1
                    self.hit_tokens -= seq.cached_tokens
                    self.query_tokens -= seq.num_tokens
                    return
        finally:
            self.waiting.extendleft(reversed(held))

    def finish(self, seq: Sequence, status: Status) -> None:
        self.release(seq)
        if seq in self.running:
            self.running.remove(seq)
        seq.status = status
