"""Process groups of one rank: the world (rendezvous), its tensor-parallel and expert-parallel groups (the
model's all-reduces) and a gloo control group (rank 0's step messages), each with the collective timeout."""

from __future__ import annotations

import datetime
from dataclasses import dataclass

import torch
import torch.distributed as dist

from inference.parallel.spec import ParallelSpec


class RankFailed(BaseException):
    """Another rank died, hung past the collective timeout or fell out of step. A BaseException on purpose: the
    engine's per-request error handling must not swallow it; the engine thread stops and /health turns 503."""


@dataclass
class RankContext:
    """What a rank knows about the layout: its rank, device and groups."""

    spec: ParallelSpec
    rank: int
    device: str
    tp_group: object = None  # None when the group has one rank
    ep_group: object = None
    tp_ranks: tuple[int, ...] = ()
    ep_ranks: tuple[int, ...] = ()
    control: object = None  # gloo group over the world

    @property
    def world_group(self):
        """The model's group that spans every rank (world = max(T, E), so the TP or the EP group): NCCL on GPUs,
        where a restore's rows go device to device (inference.parallel.protocol.send_tensor)."""
        return self.tp_group if self.spec.tp == self.spec.world else self.ep_group

    @property
    def tp_rank(self) -> int:
        return self.spec.tp_rank(self.rank)

    @property
    def ep_rank(self) -> int:
        return self.spec.ep_rank(self.rank)


def init_rank(spec: ParallelSpec, rank: int, init_method: str, device: str) -> RankContext:
    """Join the world (waits up to startup_timeout_s for every rank) and build this rank's groups."""
    backend = "nccl" if device.startswith("cuda") else "gloo"
    if device.startswith("cuda"):
        torch.cuda.set_device(torch.device(device))
    dist.init_process_group(backend, init_method=init_method, rank=rank, world_size=spec.world,
                            timeout=datetime.timedelta(seconds=spec.startup_timeout_s))
    timeout = datetime.timedelta(seconds=spec.timeout_s)
    ctx = RankContext(spec, rank, device)
    for name, size in (("tp", spec.tp), ("ep", spec.ep)):
        for ranks in spec.blocks(size):  # every rank creates every group, in the same order
            group = dist.new_group(ranks, timeout=timeout, backend=backend) if size > 1 else None
            if rank in ranks:
                setattr(ctx, f"{name}_group", group)
                setattr(ctx, f"{name}_ranks", tuple(ranks))
    ctx.control = dist.new_group(list(range(spec.world)), timeout=timeout, backend="gloo")
    return ctx


def close_rank() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()
