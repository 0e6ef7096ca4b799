"""Starting the ranks (docs/parallel.md): torch.multiprocessing on one machine (rank 0 is the calling process, ranks
1 … W-1 spawned children), or torchrun across nodes (every process started by torchrun; the standard RANK,
WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT variables). Then each rank loads its shard of the checkpoint."""

from __future__ import annotations

import logging
import os
import socket
import sys
import threading
from dataclasses import dataclass
from multiprocessing.connection import wait

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from inference.errors import ConfigError
from inference.parallel.groups import RankContext, close_rank, init_rank
from inference.parallel.shard import shard_model
from inference.parallel.spec import ParallelSpec

log = logging.getLogger("inference.parallel")


@dataclass(frozen=True)
class LoadSpec:
    """What every rank loads: the checkpoint and how (inference.checkpoint.loader.load_model's arguments)."""

    checkpoint: str
    dtype: str = "float32"
    weights: str | None = None
    device: str = "cpu"  # cpu, or cuda (each rank takes cuda:LOCAL_RANK)
    reference_numerics: bool | None = None
    log_level: str = "INFO"


def under_torchrun() -> bool:
    return "TORCHELASTIC_RUN_ID" in os.environ or ("RANK" in os.environ and "WORLD_SIZE" in os.environ)


def rank_device(device: str, local_rank: int) -> str:
    return f"cuda:{local_rank}" if device.startswith("cuda") else "cpu"


def load_sharded(load: LoadSpec, ctx: RankContext):
    """This rank's shard of the model: read tensor by tensor into the sharded model on the rank's device
    (inference.parallel.load); an HF-named checkpoint is loaded whole on the CPU, sharded, then moved."""
    from inference.checkpoint.loader import DTYPES, head_layout_, load_model
    from inference.checkpoint.modes import default_weights
    from inference.parallel.load import load_shard

    overrides = {} if load.reference_numerics is None else {"reference_numerics": load.reference_numerics}
    weights = load.weights or default_weights(ctx.device)
    model = load_shard(load.checkpoint, ctx, load.dtype, weights, **overrides)
    if model is None:
        model = load_model(load.checkpoint, DTYPES[load.dtype], weights=weights, device="cpu", **overrides)
        model = shard_model(model, ctx).to(ctx.device)
    return head_layout_(model)  # the output head's layout for the rank's device, whichever way it was read


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _entry(rank: int, spec: ParallelSpec, init_method: str, load: LoadSpec, target, extra) -> None:
    """A spawned rank: join, load, run `target(ctx, model, *extra)`, exit with its code."""
    logging.basicConfig(level=load.log_level, format=f"%(asctime)s %(levelname)s rank{rank} %(name)s: %(message)s")
    torch.set_num_threads(max(1, torch.get_num_threads() // spec.world))
    try:
        local = int(os.environ.get("LOCAL_RANK", rank)) if init_method == "env://" else rank
        ctx = init_rank(spec, rank, init_method, rank_device(load.device, local))
        model = load_sharded(load, ctx)
        dist.barrier()  # every rank loaded (startup timeout)
        code = target(ctx, model, *extra) or 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        log.exception("rank %d failed", rank)
        code = 1
    if code == 0:
        close_rank()
    os._exit(code)  # never wait on a dead peer in the process group's destructor


@dataclass
class Ranks:
    """Rank 0's handle on the world: its context, its model shard and the spawned processes (none under torchrun)."""

    ctx: RankContext
    model: object
    procs: list
    closing: bool = False  # set before a clean shutdown: exits are then expected

    def watch(self, on_exit) -> None:
        """Call on_exit(reason) from a thread as soon as a spawned rank exits."""
        if not self.procs:
            return
        sentinels = {p.sentinel: (i + 1, p) for i, p in enumerate(self.procs)}

        def run():
            ready = wait(list(sentinels))
            rank, proc = sentinels[ready[0]]
            proc.join(1)
            if not self.closing:
                on_exit(f"rank {rank} (pid {proc.pid}) exited with code {proc.exitcode}")

        threading.Thread(target=run, name="parallel-watch", daemon=True).start()

    def shutdown(self, timeout: float = 10.0) -> None:
        for p in self.procs:
            p.join(timeout)
            if p.is_alive():
                p.terminate()
                p.join(5)


def start(spec: ParallelSpec, load: LoadSpec, target, extra: tuple = ()) -> Ranks:
    """Start the world and return rank 0's Ranks. Under torchrun a process of rank > 0 runs `target` and exits."""
    from pathlib import Path

    from inference.model.config import ModelArgs

    experts = ModelArgs.from_file(Path(load.checkpoint) / "config.json").n_routed_experts
    if experts % spec.ep:
        raise ConfigError(f"--ep {spec.ep} must divide the checkpoint's {experts} routed experts")
    if under_torchrun():
        rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
        if world != spec.world:
            raise ConfigError(f"torchrun started {world} processes; --tp {spec.tp} --ep {spec.ep} need {spec.world}")
        if rank != 0:
            _entry(rank, spec, "env://", load, target, extra)
        init_method, procs = "env://", []
        device = rank_device(load.device, int(os.environ.get("LOCAL_RANK", 0)))
    else:
        init_method = f"tcp://127.0.0.1:{_free_port()}"
        context = mp.get_context("spawn")
        procs = [context.Process(target=_entry, args=(r, spec, init_method, load, target, extra), daemon=True,
                                 name=f"wholedoc-rank{r}") for r in range(1, spec.world)]
        for p in procs:
            p.start()
        for r, p in enumerate(procs, 1):
            print(f"wholedoc-inference: rank {r} pid {p.pid}", file=sys.stderr, flush=True)
        device = rank_device(load.device, 0)
    started = threading.Event()
    if procs:
        threading.Thread(target=_fail_fast, args=(procs, started), name="parallel-startup", daemon=True).start()
    ctx = init_rank(spec, 0, init_method, device)
    model = load_sharded(load, ctx)
    dist.barrier()
    started.set()
    return Ranks(ctx, model, procs)


def _fail_fast(procs: list, started: threading.Event) -> None:
    """Until every rank has loaded: a spawned rank that exits ends this process with status 2 (rank 0 would
    otherwise wait in the rendezvous for the whole startup timeout)."""
    while not started.is_set():
        ready = wait([p.sentinel for p in procs], timeout=0.5)
        if ready and not started.is_set():
            dead = [p for p in procs if p.sentinel in ready]
            dead[0].join(1)
            print(f"wholedoc-inference: {dead[0].name} (pid {dead[0].pid}) exited during startup with code "
                  f"{dead[0].exitcode}; see its log above", file=sys.stderr, flush=True)
            for p in procs:
                if p.is_alive():
                    p.kill()
            os._exit(2)
