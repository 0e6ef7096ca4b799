"""wholedoc's DeepSeek-V4 inference: the library in subpackages, the entry points beside them.

Library:
  model/       config, the network (model.py, DeepSeek's classes and names), the model runner (runner.py: each call's
               flat inputs and cache bookkeeping), incremental state, RoPE, attention dispatch onto kernels/,
               reference numerics, the plain reference generator (decode.py)
  checkpoint/  safetensors I/O (official and HF naming), FP8/FP4 release formats, dev presets and random checkpoints,
               load_model
  text/        the V4 tokenizer (special ids checked) and chat encoding; pure Python
  engine/      paged KV cache, prefix cache, scheduler, Engine
  server/      OpenAI- and Anthropic-compatible HTTP server over an Engine

Entry points and benchmarks (`python -m inference.<name>`): serve, generate, devcheckpoint, bench, bench_forward,
bench_profile. They import the library; the library never imports them.

OpenMP threads wait passively unless OMP_WAIT_POLICY is set (read once, when torch loads its OpenMP runtime, so it
counts only when this package is imported before torch, as every entry point does): libgomp's default spin-wait made
a 2-thread prefill 4-8x slower whenever another process shared the cores (docs/cpu-profile.md, thread settings);
on a dedicated machine OMP_WAIT_POLICY=ACTIVE is 13-20 % faster.

The C allocator keeps freed memory for reuse (glibc: mmap threshold 32 MiB, trim threshold 1 GiB): with its
defaults every large temporary of a forward call came back as fresh zero-filled pages, and the page faults were
20-40 % of a prefill's CPU time (docs/cpu-profile.md)."""

import ctypes
import os
import sys

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def _keep_freed_memory() -> None:
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 32 << 20)  # M_MMAP_THRESHOLD (its maximum): fixed, no longer adapting downwards
        libc.mallopt(-1, 1 << 30)  # M_TRIM_THRESHOLD: give memory back to the OS only above 1 GiB free at the top
    except (OSError, AttributeError):  # not glibc
        pass


_keep_freed_memory()
