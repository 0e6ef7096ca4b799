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
a 2-thread prefill 4-8x slower whenever another process shared the cores (docs/cpu-profile.md, thread settings)."""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
