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

Entry points and benchmarks (`python -m inference.<name>`): serve, generate, devcheckpoint, bench, bench_forward.
They import the library; the library never imports them."""
