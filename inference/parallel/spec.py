"""The parallel layout of a deployment: `--tp T --ep E` over world size max(T, E) (docs/parallel.md)."""

from __future__ import annotations

from dataclasses import dataclass

from inference.errors import ConfigError


@dataclass(frozen=True)
class ParallelSpec:
    """T tensor-parallel and E expert-parallel ranks over world = max(T, E) ranks, each size dividing the world.

    Rank r holds head shard r % T (its tensor-parallel group is the block of T consecutive ranks holding it) and
    expert shard r % E (likewise). `timeout_s` bounds every collective: a dead or hung rank fails the server within
    it; rank 0 pings idle workers every `heartbeat_s`."""

    tp: int = 1
    ep: int = 1
    timeout_s: float = 30.0
    startup_timeout_s: float = 600.0

    def __post_init__(self):
        for name in ("tp", "ep"):
            if getattr(self, name) < 1:
                raise ConfigError(f"--{name} must be at least 1, got {getattr(self, name)}")
        if self.world % self.tp or self.world % self.ep:
            raise ConfigError(f"--tp {self.tp} and --ep {self.ep} must each divide the world size {self.world}")
        if self.timeout_s <= 0 or self.startup_timeout_s <= 0:
            raise ConfigError("the collective and startup timeouts must be positive")

    @property
    def world(self) -> int:
        return max(self.tp, self.ep)

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def heartbeat_s(self) -> float:
        return self.timeout_s / 3

    def tp_rank(self, rank: int) -> int:
        return rank % self.tp

    def ep_rank(self, rank: int) -> int:
        return rank % self.ep

    def blocks(self, size: int) -> list[list[int]]:
        """The world cut into consecutive groups of `size` ranks."""
        return [list(range(i, i + size)) for i in range(0, self.world, size)]


def add_parallel_args(parser) -> None:
    """`--tp`, `--ep` and `--collective-timeout` for inference.serve and inference.generate."""
    parser.add_argument("--tp", type=int, default=1,
                        help="tensor-parallel ranks: attention heads and the shared expert split T ways")
    parser.add_argument("--ep", type=int, default=1, help="expert-parallel ranks: routed experts split E ways; "
                        "world size = max(tp, ep) (docs/parallel.md)")
    parser.add_argument("--collective-timeout", type=float, default=30.0,
                        help="seconds any collective may wait for another rank before the server fails (a dead or "
                             "hung rank: /health 503, then exit non-zero)")


def spec_from_args(ns) -> ParallelSpec:
    return ParallelSpec(tp=ns.tp, ep=ns.ep, timeout_s=ns.collective_timeout)
