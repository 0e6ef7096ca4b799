"""A parallel engine for inference.serve (docs/parallel.md): start the ranks, build rank 0's Engine on its shard,
make it drive the others, and run the HTTP server until a rank fails (then /health 503 and a non-zero exit)."""

from __future__ import annotations

import logging
import os
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
        os._exit(FAIL_EXIT)  # the engine thread is stuck in a collective that will not return

    threading.Thread(target=watchdog, name="parallel-watchdog", daemon=True).start()
    server.run()
    if failed.is_set() or pe.runner.failure is not None:
        for p in pe.ranks.procs:
            if p.is_alive():
                p.terminate()
        os._exit(FAIL_EXIT)
    pe.close()
    return 0
