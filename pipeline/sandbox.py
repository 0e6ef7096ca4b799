"""Run an extraction function in a child process with a wall-clock limit and an address-space limit.

The child reports which unit it is working on (a page number, a file path) through a pipe, so a timeout,
a memory failure or a crash names the page that caused it. Used for PDFs and for any other extraction.
"""

from __future__ import annotations

import importlib
import math
import os
import pickle
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

from pipeline.errors import ExtractionCrashed, ExtractionResourceLimit, ExtractionTimeout, IngestError

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the folder holding pipeline/
_MEMORY_WORDS = ("malloc", "calloc", "realloc", "out of memory", "memory allocation", "cannot allocate", "bad_alloc")


def run_isolated(
    fn: Callable[..., Any] | str,
    *args: Any,
    timeout_s: float,
    memory_bytes: int,
    unit_timeout_s: float | None = None,
    with_progress: bool = False,
    block_modules: tuple[str, ...] = (),
    **kwargs: Any,
) -> Any:
    """Return `fn(*args, **kwargs)` computed in a child process, or raise a typed error.

    Args:
        timeout_s: wall-clock limit for the whole call; the child is killed past it (`ExtractionTimeout`).
        memory_bytes: RLIMIT_AS of the child (its whole address space: the interpreter and pymupdf take ~0.6 GB).
        unit_timeout_s: optional limit between two progress reports (one page must not take longer).
        with_progress: call `fn(..., progress=report)`; `report(where)` names the unit now being processed.
        block_modules: modules the child must not import (e.g. pymupdf's ONNX layout model: 0.5 s, never used).
    Raises `ExtractionTimeout`, `ExtractionResourceLimit` (MemoryError or an allocation failure in the child),
    `ExtractionCrashed` (killed by a signal or exited without a result), each with `.where`; errors that `fn`
    raises (e.g. `EncryptedPdf`) are re-raised as they are. `fn` and its arguments must be picklable; `fn` may
    also be named as "package.module:function", which only the child imports (the API renders page images this
    way and so never loads PyMuPDF itself: docs/web.md).
    The child is a fresh interpreter (`python -m pipeline.sandbox`), not a fork: no locks or threads are
    inherited, and the caller's `__main__` is never re-imported.
    """
    payload = pickle.dumps((fn, args, kwargs, memory_bytes, timeout_s, with_progress))
    head = pickle.dumps((sys.path, block_modules))
    read_fd, write_fd = os.pipe()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([_ROOT, os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
    child = subprocess.Popen(
        [sys.executable, "-m", "pipeline.sandbox", str(write_fd)], stdin=subprocess.PIPE, pass_fds=(write_fd,), env=env
    )
    os.close(write_fd)  # NOTE: the parent's copy must be closed, or recv() never sees EOF when the child dies
    recv = Connection(read_fd, writable=False)
    where: int | str | None = None
    deadline = time.monotonic() + timeout_s
    unit_deadline = math.inf
    try:
        try:
            child.stdin.write(head + payload)
            child.stdin.close()
        except BrokenPipeError:
            pass  # the child died at start; reported below as a crash
        while True:
            now = time.monotonic()
            limit = min(deadline, unit_deadline)
            if now >= limit:
                if limit == deadline:
                    raise ExtractionTimeout(f"extraction ran past its {timeout_s:g} s limit{_at(where)}", where=where)
                raise ExtractionTimeout(
                    f"one unit took more than {unit_timeout_s:g} s{_at(where)}; extraction stopped", where=where
                )
            if not recv.poll(limit - now):
                continue
            try:
                kind, payload = recv.recv()
            except (EOFError, OSError):
                break  # the child died without a result
            if kind == "progress":
                where = payload
                if unit_timeout_s is not None:
                    unit_deadline = time.monotonic() + unit_timeout_s
            elif kind == "ok":
                return payload
            elif kind == "memory":
                raise ExtractionResourceLimit(
                    f"extraction needed more than its {_gib(memory_bytes)} memory limit{_at(where)}: {payload}",
                    where=where,
                )
            else:
                raise payload
        try:
            child.wait(5)
        except subprocess.TimeoutExpired:
            pass
        raise ExtractionCrashed(f"the extraction process {_death(child.returncode)}{_at(where)}", where=where)
    finally:
        recv.close()
        if child.poll() is None:
            child.kill()
        child.wait()


def _child_main(conn: Connection) -> None:
    """Child side: read the call from stdin, set the limits, run, send ok / error / memory (and progress)."""
    stdin = sys.stdin.buffer
    sys.path[:], block_modules = pickle.load(stdin)  # the parent's path: `fn` imports from where the parent did
    for name in block_modules:
        sys.modules[name] = None  # `import name` now raises ImportError, which optional imports tolerate
    fn, args, kwargs, memory_bytes, timeout_s, with_progress = pickle.load(stdin)
    if isinstance(fn, str):  # "package.module:function": imported here only, never by the parent
        module, _, name = fn.partition(":")
        fn = getattr(importlib.import_module(module), name)
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    cpu_s = math.ceil(timeout_s) + 5  # backstop only: the parent's wall clock normally fires first
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_s, cpu_s))
    if with_progress:
        kwargs = {**kwargs, "progress": lambda where: conn.send(("progress", where))}
    try:
        result = fn(*args, **kwargs)
        conn.send(("ok", result))
    except MemoryError as e:
        _send_memory(conn, e)
    except Exception as e:  # noqa: BLE001 - every failure is reported to the parent, typed
        if is_memory_error(e):
            _send_memory(conn, e)
            return
        try:
            conn.send(("error", e))
        except Exception:  # noqa: BLE001 - the error itself does not pickle
            conn.send(("error", IngestError(f"{type(e).__name__}: {e}")))
    finally:
        conn.close()


def is_memory_error(e: BaseException) -> bool:
    """A MemoryError, or a library error that reports a failed allocation (MuPDF: "malloc … failed")."""
    return isinstance(e, MemoryError) or any(w in str(e).lower() for w in _MEMORY_WORDS)


def _send_memory(conn, e: BaseException) -> None:
    try:
        conn.send(("memory", f"{type(e).__name__}: {e}"[:500]))
    except MemoryError:
        pass  # the parent sees EOF and reports a crash


def _at(where: int | str | None) -> str:
    if where is None:
        return " (before the first unit)"
    return f" at page {where}" if isinstance(where, int) else f" at {where}"


def _gib(n: int) -> str:
    return f"{n / 2**30:.2f} GiB"


def _death(exitcode: int | None) -> str:
    if exitcode is None:
        return "did not exit"
    if exitcode < 0:
        sig = -exitcode
        name = signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else str(sig)
        hint = " (CPU limit)" if sig == signal.SIGXCPU else " (often the memory limit)" if sig in (6, 9, 11) else ""
        return f"was killed by {name}{hint}"
    return f"exited with status {exitcode} without a result"


if __name__ == "__main__":
    _child_main(Connection(int(sys.argv[1]), readable=False))
