"""A parallel engine for inference.serve (docs/parallel.md): start the ranks, build rank 0's Engine on its shard,
make it drive the others, and run the HTTP server until a rank fails (then /health 503 and a non-zero exit)."""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from dataclasses import dataclass

from inference.model.runner import ModelRunner
from inference.parallel import launch
from inference.parallel.executor import ParallelRunner
from inference.parallel.groups import close_rank
from inference.parallel.spec import ParallelSpec
from inference.parallel.worker import serve_worker

log = logging.getLogger("inference.parallel")
FAIL_EXIT = 3  # inference.serve's exit status after a rank failed


@dataclass
class ParallelEngine:
    engine: object
    runner: ParallelRunner
    ranks: launch.Ranks

    def close(self) -> None:
        self.ranks.closing = True
        self.runner.close()
        self.ranks.shutdown()
        close_rank()


def start_engine(spec: ParallelSpec, load: launch.LoadSpec, config, tokenizer=None, model_id: str = ""
                 ) -> ParallelEngine:
    """Every rank up with its shard; rank 0's Engine (its scheduler and cache manager drive them all)."""
    from inference.engine import Engine

    ranks = launch.start(spec, load, serve_worker)
    engine = Engine(ranks.model, config, tokenizer, model_id=model_id)
    runner = ParallelRunner(ModelRunner(ranks.model), ranks.ctx)
    runner.attach(engine)
    ranks.watch(runner.fail)
    return ParallelEngine(engine, runner, ranks)


def start_parallel(spec: ParallelSpec, checkpoint: str, config, log_level: str = "info") -> ParallelEngine:
    """inference.serve's parallel engine: the checkpoint loaded as `config` says, on every rank, with its tokenizer
    on rank 0."""
    from pathlib import Path

    from inference.text.tokenizer import load_tokenizer

    tok = load_tokenizer(checkpoint) if (Path(checkpoint) / "tokenizer.json").exists() else None
    load = launch.LoadSpec(str(checkpoint), config.dtype, config.weights, config.device, config.reference_numerics,
                           log_level.upper())
    return start_engine(spec, load, config, tok, model_id=str(Path(checkpoint).resolve()))


def run_server(app, pe: ParallelEngine, host: str, port: int, log_level: str, grace_s: float = 3.0) -> int:
    """uvicorn until shut down (0) or until a rank fails: /health answers 503 for grace_s, then the server stops
    and the process exits FAIL_EXIT; os._exit if stopping takes longer than the collective timeout."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level=log_level,
                                           timeout_graceful_shutdown=5))
    failed = threading.Event()

    def watchdog():
        while pe.runner.failure is None:
            if server.should_exit:
                return
            time.sleep(0.2)
        failed.set()
        log.error("a rank failed (%s): /health answers 503; exiting in %.0f s", pe.runner.failure, grace_s)
        time.sleep(grace_s)
        server.should_exit = True
        time.sleep(pe.ranks.ctx.spec.timeout_s)
        for p in pe.ranks.procs:
            if p.is_alive():
                p.kill()
        os._exit(FAIL_EXIT)  # the engine thread is stuck in a collective that will not return

    threading.Thread(target=watchdog, name="parallel-watchdog", daemon=True).start()
    caught: list[int] = []  # uvicorn re-raises the signal that stopped it: stop the workers first, then obey it
    previous = {sig: signal.signal(sig, lambda num, _frame: caught.append(num)) for sig in (signal.SIGTERM,
                                                                                           signal.SIGINT)}
    server.run()
    if failed.is_set() or pe.runner.failure is not None:
        for p in pe.ranks.procs:
            if p.is_alive():
                p.kill()  # a stopped (hung) process ignores SIGTERM until continued
        os._exit(FAIL_EXIT)
    pe.close()
    for sig, handler in previous.items():
        signal.signal(sig, handler)
    for sig in caught:
        signal.raise_signal(sig)
    return 0
