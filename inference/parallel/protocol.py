"""The lock-step protocol between rank 0 and the other ranks of a server (docs/parallel.md).

Rank 0 owns the scheduler and the cache manager. Before each forward it broadcasts one `Step`: the window-pool
events since the last step (checkpoints saved and loaded, in order) and, per piece, the sequence's window slot,
the generation of its state, where it starts, the new entries of its block table and its tokens. Every other rank
holds a replica of the cache pools and keeps a `StateMirror`: the same PagedState per slot, rebuilt when the
generation changes, fed the same tokens, so its cache rows are rank 0's rows.

A prefix-store restore writes pools outside any forward: rank 0 broadcasts a `Restore` (the events before it, the
blocks and the checkpoint slot it wrote) right after installing it, then the written contents as tensor broadcasts
(on the model's group that spans every rank); every rank writes them before it reads the next message, so no rank
runs a step on pools without the restore."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator
from dataclasses import dataclass, field

import torch
import torch.distributed as dist

from inference.engine.layout import CacheLayout
from inference.engine.paged_state import PagedState
from inference.engine.pools import CachePools


@dataclass(frozen=True)
class Init:
    """The cache pools' geometry (every rank allocates the same)."""

    dtype: str
    num_blocks: int
    num_slots: int


@dataclass(frozen=True)
class Ping:
    """Rank 0 is alive and idle (sent every heartbeat_s without a step)."""


def answer_ping(control) -> None:
    """Every rank's half of a Ping: one tiny all-reduce on the control group (a broadcast alone would not notice a
    rank that stopped reading)."""
    dist.all_reduce(torch.ones(1), group=control)


@dataclass(frozen=True)
class Stop:
    """Clean shutdown: the worker leaves its loop and exits 0."""


@dataclass(frozen=True)
class Restore:
    """Rank 0 installed a prefix-store restore (docs/prefix-store.md) between steps. `events`: the pool events
    recorded before it (replayed first, as a Step's); `blocks`: the history blocks it wrote; `slot`: the checkpoint
    slot that received its window state (None: no window state); `carries`: per layer, the (shape, dtype) of each
    of that checkpoint's four carries (None where the layer has none). The contents follow as tensor broadcasts on
    RankContext.world_group, in `restore_payload`'s order."""

    events: tuple[tuple, ...]
    blocks: tuple[int, ...]
    slot: int | None
    carries: tuple[tuple, ...] | None


def carry_specs(carries: list | None) -> tuple[tuple, ...] | None:
    if carries is None:
        return None
    return tuple(tuple(None if t is None else (tuple(t.shape), t.dtype) for t in layer) for layer in carries)


def restore_payload(pools: CachePools, blocks: tuple[int, ...], slot: int | None) -> Iterator[torch.Tensor]:
    """What a Restore's receivers need, read back from rank 0's pools after the install (so the replicas get rank
    0's bytes, whatever conversion the install did): every layer's rows then keys of `blocks`, then the window rows
    and the carries of `slot`. One layer's copy at a time (a long prefix is GiBs)."""
    if blocks:
        idx = torch.tensor(blocks, device=pools.device)
        yield from (pool[idx] for pool in pools.rows + pools.keys if pool is not None)
    if slot is not None:
        yield from (w[slot] for w in pools.window)
        yield from (t for layer in pools.carries[slot] for t in layer if t is not None)


def send_tensor(t: torch.Tensor, group) -> None:
    """Rank 0's half of a tensor broadcast on a group that spans every rank (RankContext.world_group: gloo on CPU,
    NCCL on GPUs, where the tensor stays on the device): its bytes, whatever the dtype."""
    if t.numel():
        dist.broadcast(t.detach().contiguous().view(-1).view(torch.uint8), src=0, group=group)


def receive_tensor(shape: tuple, dtype: torch.dtype, group, device) -> torch.Tensor:
    """Every other rank's half of send_tensor (a tensor on `device`)."""
    n = math.prod(shape)
    buf = torch.empty(n * dtype.itemsize, dtype=torch.uint8, device=device)
    if n:
        dist.broadcast(buf, src=0, group=group)
    return buf.view(dtype).view(shape)


@dataclass(frozen=True)
class Digest:
    """Every rank answers pool_digest of its cache pools (an all-gather on the control group): a check that the
    replicas hold rank 0's bytes (ParallelRunner.pool_digests)."""


def pool_digest(pools: CachePools) -> dict[str, str]:
    """sha256 of the pools by part: history rows, indexer keys, window slots, checkpoint carries; and the rank's
    torch thread count. Restored bytes are equal on every rank; computed rows are bitwise equal when the ranks
    compute alike (on CPU, a GEMV split over another number of threads sums in another order: the replicated rows
    then agree within rounding, not bitwise)."""

    def digest(tensors) -> str:
        h = hashlib.sha256()
        for t in tensors:
            if t is not None:
                h.update(t.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
        return h.hexdigest()

    carries = [t for slot in sorted(pools.carries) for layer in pools.carries[slot] for t in layer]
    return {"threads": str(torch.get_num_threads()), "rows": digest(pools.rows), "keys": digest(pools.keys),
            "window": digest(pools.window), "carries": f"{sorted(pools.carries)}:{digest(carries)}"}


@dataclass(frozen=True)
class Piece:
    slot: int
    gen: int
    start: int
    shared_upto: int
    load: int | None  # the load event that gave a new state its checkpoint (None: started without one)
    kept: int  # block-table entries the worker already has (tables only grow while a state lives)
    blocks: tuple[int, ...]  # the entries after those
    ids: tuple[int, ...]


@dataclass(frozen=True)
class Step:
    events: tuple[tuple, ...]  # ("save", state slot, checkpoint slot) | ("load", event id, checkpoint slot, slot)
    pieces: tuple[Piece, ...]


class PoolEvents:
    """Rank 0's record of window-pool events. Installed on the engine's CachePools: PagedState.save_checkpoint
    copies a window then sets the slot's carries (a save); load_checkpoint only copies (a load)."""

    def __init__(self, pools: CachePools):
        self.events: list[list] = []
        self.last_load: dict[int, int] = {}  # window slot -> id of the latest load into it
        self._next_id = 0
        copy = pools.copy_window
        carries = _Carries(self, pools.carries)

        def copy_window(src: int, dst: int) -> None:
            copy(src, dst)
            self.events.append(["load", self._next_id, src, dst])
            self.last_load[dst] = self._next_id
            self._next_id += 1

        pools.copy_window, pools.carries = copy_window, carries

    def saved(self, slot: int) -> None:
        """carries[slot] was set: the copy just recorded was a save into checkpoint slot `slot`."""
        last = self.events[-1] if self.events else None
        if last is not None and last[0] == "load" and last[3] == slot:
            self.events[-1] = ["save", last[2], slot]

    def take(self) -> tuple[tuple, ...]:
        out, self.events = tuple(tuple(e) for e in self.events), []
        return out


class _Carries(dict):
    def __init__(self, events: PoolEvents, initial: dict):
        super().__init__(initial)
        self._events = events

    def __setitem__(self, slot, value) -> None:
        super().__setitem__(slot, value)
        self._events.saved(slot)


def describe(pieces: list[tuple[PagedState, list[int]]], events: PoolEvents, counter: list[int]) -> tuple[Piece, ...]:
    """The Step pieces of rank 0's forward_packed call; gives a state seen for the first time its generation."""
    out = []
    for state, ids in pieces:
        gen = getattr(state, "parallel_gen", None)
        load = None
        if gen is None:
            counter[0] += 1
            gen = state.parallel_gen = counter[0]
            # a state resumed from a checkpoint starts past 0 with exact windows (the recompute fallback marks
            # exact_from); the latest load into its slot is its own
            if state.num_tokens > 0 and state.exact_from == 0:
                load = events.last_load.get(state.slot)
        table, sent = state.block_table, getattr(state, "parallel_sent", [])
        kept = len(sent) if table[: len(sent)] == sent else 0  # tables grow by appending; else send it whole
        out.append(Piece(state.slot, gen, state.num_tokens, state.shared_upto, load, kept, tuple(table[kept:]),
                         tuple(ids)))
        state.parallel_sent = list(table)
    return tuple(out)


@dataclass
class StateMirror:
    """A worker's replica of rank 0's cache: the pools, and per window slot the state of the generation there."""

    pools: CachePools
    states: dict[int, tuple[int, PagedState]] = field(default_factory=dict)
    loaded: dict[int, list] = field(default_factory=dict)  # load event id -> the checkpoint's carries then

    @classmethod
    def of(cls, init: Init, args, device) -> StateMirror:
        return cls(CachePools(CacheLayout(args, init.dtype), init.num_blocks, init.num_slots, device))

    def replay(self, events: tuple[tuple, ...]) -> None:
        """Rank 0's window-pool events, in order."""
        for ev in events:
            if ev[0] == "save":
                self.states[ev[1]][1].save_checkpoint(ev[2])
            else:
                _, eid, src, dst = ev
                self.pools.copy_window(src, dst)
                self.loaded[eid] = self.pools.carries.get(src)
                if len(self.loaded) > 4096:
                    self.loaded.pop(next(iter(self.loaded)))

    def restore(self, msg: Restore, receive) -> None:
        """Replay the events before a Restore, then write what rank 0 wrote: `receive(shape, dtype)` gives the next
        tensor of restore_payload's order."""
        self.replay(msg.events)
        p = self.pools
        if msg.blocks:
            idx = torch.tensor(msg.blocks, device=p.device)
            for pool in p.rows + p.keys:
                if pool is not None:
                    pool[idx] = receive((len(msg.blocks), *pool.shape[1:]), pool.dtype).to(p.device)
        if msg.slot is not None:
            for w in p.window:
                w[msg.slot].copy_(receive(tuple(w.shape[1:]), w.dtype))
            p.carries[msg.slot] = [tuple(None if s is None else receive(*s).to(p.device) for s in layer)
                                   for layer in msg.carries]

    def apply(self, step: Step) -> list[tuple[PagedState, list[int]]]:
        """Replay the step's events, then the pieces for ModelRunner.forward_packed."""
        self.replay(step.events)
        pieces = []
        for p in step.pieces:
            gen, state = self.states.get(p.slot, (None, None))
            if gen != p.gen:
                state = PagedState(self.pools, p.slot, p.start, p.shared_upto)
                carries = self.loaded.pop(p.load, None) if p.load is not None else None
                if carries is not None:
                    _set_carries(state, carries)
                self.states[p.slot] = (p.gen, state)
            if state.num_tokens != p.start:
                raise RuntimeError(f"slot {p.slot}: this rank's state is at {state.num_tokens}, rank 0's at "
                                   f"{p.start}: out of step")
            if p.blocks or len(state.block_table) != p.kept:
                state.set_blocks(state.block_table[: p.kept] + list(p.blocks))
            pieces.append((state, list(p.ids)))
        return pieces


def _set_carries(state: PagedState, saved: list) -> None:
    """The carry half of PagedState.load_checkpoint (the window copy was replayed as its event)."""
    for st, carry in zip(state.layers, saved):
        for cs, (kv, score) in ((st.compressor, carry[0:2]), (st.indexer, carry[2:4])):
            if cs is not None and kv is not None:
                cs.carry_kv, cs.carry_score = kv.clone(), score.clone()
