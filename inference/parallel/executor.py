"""Rank 0's side of a parallel server: the engine's model runner, made to drive every rank in lock-step.

`ParallelRunner.forward_packed` (what Engine._execute calls) checks the pieces, broadcasts one protocol.Step on
the control group, then runs rank 0's own shard; the model's all-reduces meet the other ranks there. A failed or
timed-out collective, a worker process that exits, or a heartbeat nobody answers sets `failure` and raises
RankFailed: the engine thread stops, /health answers 503 and inference.serve exits non-zero (docs/parallel.md).

With a prefix store, `replicate_restore` (called by the engine's SnapshotHooks right after it installed a restore)
broadcasts a protocol.Restore and the restored contents, read back from rank 0's pools, before anything else is sent."""

from __future__ import annotations

import logging
import threading
import time

import torch.distributed as dist

from inference.model.runner import ModelRunner, check_pieces
from inference.parallel import protocol
from inference.parallel.groups import RankContext, RankFailed

log = logging.getLogger("inference.parallel")


class ParallelRunner:
    """Stands in for the engine's ModelRunner on rank 0."""

    def __init__(self, runner: ModelRunner, ctx: RankContext):
        self.runner, self.ctx = runner, ctx
        self.model, self.args = runner.model, runner.args
        self.failure: str | None = None
        self.events: protocol.PoolEvents | None = None
        self.pools = None
        self._gen = [0]
        self._lock = threading.Lock()
        self._last_send = time.monotonic()
        self._stop = threading.Event()
        self._heartbeat = threading.Thread(target=self._beat, name="parallel-heartbeat", daemon=True)

    def attach(self, engine) -> None:
        """Become `engine`'s runner: record its pool events, tell the workers the pools' geometry, start beating.
        A prefix store attached before or after replicates its restores through replicate_restore."""
        self.pools = engine.pools
        self.events = protocol.PoolEvents(engine.pools)
        if engine.snapshots is not None:
            engine.snapshots.replicate = self.replicate_restore
        engine.runner = self
        engine.executor = self
        p = engine.pools
        self.send(protocol.Init(engine.config.dtype, p.num_blocks, p.num_slots))
        self._heartbeat.start()

    def new_state(self, batch: int = 1):
        return self.runner.new_state(batch)

    def fail(self, reason: str) -> None:
        if self.failure is None:
            self.failure = reason
            log.error("parallel ranks failed: %s", reason)

    def send(self, msg) -> None:
        """Broadcast one control message to every rank (RankFailed if any is gone)."""
        if self.failure is not None:
            raise RankFailed(self.failure)
        try:
            dist.broadcast_object_list([msg], src=0, group=self.ctx.control)
        except Exception as exc:
            self.fail(f"control broadcast failed: {type(exc).__name__}: {exc}")
            raise RankFailed(self.failure) from exc
        self._last_send = time.monotonic()

    def forward_packed(self, pieces):
        # the model runner's input checks, before anything is sent: a refused call must not reach the workers, who
        # would wait in the forward's collectives
        check_pieces(pieces, self.args)
        with self._lock:
            self.send(protocol.Step(self.events.take(), protocol.describe(pieces, self.events, self._gen)))
            try:
                return self.runner.forward_packed(pieces)
            except Exception as exc:  # a collective failed or timed out mid-forward: the ranks are out of step
                self.fail(f"forward failed: {type(exc).__name__}: {exc}")
                raise RankFailed(self.failure) from exc

    def replicate_restore(self, blocks: list[int], slot: int | None) -> None:
        """Rank 0 just wrote a restored prefix into `blocks` (and its window state into checkpoint slot `slot`):
        every rank writes the same bytes now, after the pool events recorded before it and before the next Step."""
        if not blocks and slot is None:
            return
        with self._lock:
            carries = self.pools.carries[slot] if slot is not None else None
            self.send(protocol.Restore(self.events.take(), tuple(blocks), slot, protocol.carry_specs(carries)))
            try:
                for t in protocol.restore_payload(self.pools, tuple(blocks), slot):
                    protocol.send_tensor(t, self.ctx.world_group)
            except Exception as exc:
                self.fail(f"restore broadcast failed: {type(exc).__name__}: {exc}")
                raise RankFailed(self.failure) from exc
            self._last_send = time.monotonic()

    def pool_digests(self) -> list[dict[str, str]]:
        """protocol.pool_digest of every rank's pools, by rank (a check that the replicas hold rank 0's cache; call
        it between steps, from the engine's thread)."""
        with self._lock:
            self.send(protocol.Digest())
            out = [None] * self.ctx.spec.world
            try:
                dist.all_gather_object(out, protocol.pool_digest(self.pools), group=self.ctx.control)
            except Exception as exc:
                self.fail(f"digest failed: {type(exc).__name__}: {exc}")
                raise RankFailed(self.failure) from exc
            return out

    def _beat(self) -> None:
        while not self._stop.wait(min(1.0, self.ctx.spec.heartbeat_s / 4)):
            if self.failure is not None:
                return
            if time.monotonic() - self._last_send < self.ctx.spec.heartbeat_s:
                continue
            if self._lock.acquire(timeout=0.1):
                try:
                    self.send(protocol.Ping())
                    protocol.answer_ping(self.ctx.control)  # a round trip: a hung rank fails it within timeout_s
                except RankFailed:
                    return
                except Exception as exc:
                    self.fail(f"heartbeat failed: {type(exc).__name__}: {exc}")
                    return
                finally:
                    self._lock.release()

    def close(self) -> None:
        """Tell the workers to exit (when they still listen)."""
        self._stop.set()
        if self.failure is None and self._lock.acquire(timeout=self.ctx.spec.timeout_s):
            try:
                self.send(protocol.Stop())
            except RankFailed:
                pass
            finally:
                self._lock.release()
