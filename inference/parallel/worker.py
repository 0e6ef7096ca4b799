"""The loop of every rank but 0 in a parallel server: receive rank 0's control messages, replay each Step on the
replicated cache and run this rank's shard of the forward (docs/parallel.md). Exits 0 on Stop, non-zero when rank 0
is gone or silent past the collective timeout."""

from __future__ import annotations

import logging

import torch.distributed as dist

from inference.model.runner import ModelRunner
from inference.parallel import protocol
from inference.parallel.groups import RankContext

log = logging.getLogger("inference.parallel")


def receive(ctx: RankContext):
    box = [None]
    dist.broadcast_object_list(box, src=0, group=ctx.control)
    return box[0]


def serve_worker(ctx: RankContext, model) -> int:
    runner = ModelRunner(model)
    mirror = None
    steps = 0
    while True:
        try:
            msg = receive(ctx)
        except Exception as exc:
            log.error("rank %d: rank 0 is gone or silent (%s: %s); exiting", ctx.rank, type(exc).__name__, exc)
            return 3
        if isinstance(msg, protocol.Stop):
            log.info("rank %d: stop after %d steps", ctx.rank, steps)
            return 0
        if isinstance(msg, protocol.Ping):
            try:
                protocol.answer_ping(ctx.control)
            except Exception as exc:
                log.error("rank %d: heartbeat failed (%s: %s); exiting", ctx.rank, type(exc).__name__, exc)
                return 3
        elif isinstance(msg, protocol.Init):
            mirror = protocol.StateMirror.of(msg, model.args, model.head.weight.device)
        elif isinstance(msg, protocol.Restore):  # a prefix-store restore: written before the next Step is read
            try:
                mirror.restore(msg, lambda shape, dtype: protocol.receive_tensor(shape, dtype, ctx.world_group,
                                                                                 ctx.device))
            except Exception as exc:
                log.exception("rank %d: restore after step %d failed; exiting", ctx.rank, steps)
                raise SystemExit(4) from exc
        elif isinstance(msg, protocol.Digest):
            dist.all_gather_object([None] * ctx.spec.world, protocol.pool_digest(mirror.pools), group=ctx.control)
        elif isinstance(msg, protocol.Step):
            try:
                runner.forward_packed(mirror.apply(msg))
            except Exception as exc:
                log.exception("rank %d: step %d failed; exiting", ctx.rank, steps)
                raise SystemExit(4) from exc
            steps += 1
