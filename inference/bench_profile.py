"""python -m inference.bench_profile --checkpoint DIR [--tokens 8192] [--timers] [--threads N] [--decode N]:
where a cold prefill's (and then decode's) time goes.

Runs one prompt of --tokens tokens through the engine (chunked prefill, as inference.bench does) under torch.profiler
and prints two tables: time by region (embedding, per layer kind: mHC, norms, projections, compressor, indexer,
sparse attention, window/row bookkeeping, MoE; the logits head) and the top aten ops by self CPU time. --timers
times the regions with perf_counter instead (no op table; the profiler's event list gets slow at 128K). Regions are
labelled from outside the model (wrapped functions and module hooks), so the model code carries no profiling hooks.
Then one JSON line. docs/cpu-profile.md records the figures."""

from __future__ import annotations

import argparse
import json
import os
import time
from collections import defaultdict
from contextlib import ExitStack, contextmanager, nullcontext

import torch
from torch.autograd.profiler import record_function

import inference.model.model as model_mod
import inference.model.runner as runner_mod
from inference.checkpoint.loader import add_weights_args, resolve_device
from inference.model import attention_ops


class Timers:
    """Inclusive wall seconds per region label: a lighter stand-in for record_function on long runs (--timers)."""

    def __init__(self):
        self.seconds: dict[str, float] = defaultdict(float)

    @contextmanager
    def __call__(self, label: str):
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[label] += time.perf_counter() - t0


REGION = record_function  # the context manager that marks a region (Timers() with --timers)


_WRAPPED: list[tuple[object, str, object]] = []  # (owner, name, original) to put back after the run


def _wrap(owner, name: str, label) -> None:
    """Replace owner.name by a wrapper that runs it inside REGION(label or label(args))."""
    fn = getattr(owner, name)
    _WRAPPED.append((owner, name, fn))

    def wrapped(*args, **kwargs):
        with REGION(label(*args) if callable(label) else label):
            return fn(*args, **kwargs)

    setattr(owner, name, wrapped)


def _hook(mod, label: str) -> None:
    stack = []

    def pre(_m, _a):
        cm = REGION(label)
        cm.__enter__()
        stack.append(cm)

    def post(_m, _a, _o):
        stack.pop().__exit__(None, None, None)  # returns None: the module's output stays

    mod.register_forward_pre_hook(pre)
    mod.register_forward_hook(post)


def _kind_of(layer_id: int, args) -> str:
    return {"sliding_attention": "swa", "compressed_sparse_attention": "csa",
            "heavily_compressed_attention": "hca"}[args.attn_types[layer_id]]


def instrument(model) -> None:
    """Label the regions (function wrappers in model.py/runner.py's namespaces and module hooks)."""
    args = model.args
    for i, layer in enumerate(model.layers):
        kind = _kind_of(i, args)
        _hook(layer.attn, f"{kind}.attn")
        _hook(layer.ffn, f"{kind}.moe")
        for norm in (layer.attn_norm, layer.ffn_norm):
            _hook(norm, f"{kind}.norm")
        for lin in (layer.attn.wq_a, layer.attn.wq_b, layer.attn.wkv, layer.attn.wo_b):
            _hook(lin, f"{kind}.attn.proj")
        if layer.attn.indexer is not None:
            _hook(layer.attn.indexer, f"{kind}.attn.indexer")
        orig_pre, orig_post = layer.hc_pre, layer.hc_post
        layer.hc_pre = _labelled(orig_pre, f"{kind}.mhc")
        layer.hc_post = _labelled(orig_post, f"{kind}.mhc")
    _wrap(model_mod, "attend", lambda *a: "attn.sparse_attn." + ("swa" if not a[3].ratio else "hca" if len(a) < 8 or
                                                                  a[7] is None else "csa"))
    _wrap(model_mod, "rmsnorm_rope", "attn.rmsnorm_rope")
    _wrap(model_mod, "inverse_rope", "attn.inverse_rope")
    _wrap(model_mod, "compress_rows", "attn.compressor.pool")
    _wrap(model_mod.Compressor, "project", "attn.compressor.project")
    _wrap(runner_mod.Packing, "attention_rows", "attn.rows (window/row bookkeeping)")
    _wrap(attention_ops, "merge_pools", "attn.rows.merge_pools")
    _hook(model.embed, "embed")
    _hook(model.head, "head")


def uninstrument() -> None:
    """Put the wrapped module functions back (the model's hooks die with the model)."""
    while _WRAPPED:
        owner, name, fn = _WRAPPED.pop()
        setattr(owner, name, fn)


def _labelled(fn, label: str):
    def wrapped(*a, **k):
        with REGION(label):
            return fn(*a, **k)
    return wrapped


def region_table(prof) -> dict[str, float]:
    """Inclusive CPU seconds per labelled region (summed over calls)."""
    out: dict[str, float] = defaultdict(float)
    for ev in prof.key_averages():
        if "." in ev.key and not ev.key.startswith(("aten::", "cudnn", "mkldnn")) or ev.key in ("embed", "head"):
            out[ev.key] += ev.cpu_time_total / 1e6
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))


def op_table(prof, top: int) -> list[tuple[str, float, int]]:
    ops = [(ev.key, ev.self_cpu_time_total / 1e6, ev.count) for ev in prof.key_averages()
           if ev.key.startswith("aten::")]
    return sorted(ops, key=lambda r: -r[1])[:top]


def profile_phase(eng, done, use_timers: bool, top: int) -> dict:
    """Step the engine until done(outputs) under the profiler (or the timers): wall, CPU, regions, top ops."""
    global REGION
    timers = Timers()
    REGION = timers if use_timers else record_function
    t0, c0 = time.perf_counter(), time.process_time()
    with ExitStack() as stack:
        prof = None if use_timers else stack.enter_context(
            torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]))
        with REGION("step") if not use_timers else nullcontext():
            while not done(eng.step()):
                pass
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    if use_timers:
        regions, ops = dict(sorted(timers.seconds.items(), key=lambda kv: -kv[1])), []
    else:
        regions, ops = region_table(prof), op_table(prof, top)
    return {"wall_s": wall, "cpu_s": cpu, "load": os.getloadavg()[0], "regions": regions,
            "ops": {k: [v, n] for k, v, n in ops}}


def report(title: str, r: dict) -> None:
    print(f"{title}: wall {r['wall_s']:.2f} s (profiled), process CPU {r['cpu_s']:.2f} s, load {r['load']:.2f}")
    print(f"{'region (inclusive s)':<44} {'s':>8} {'%':>6}")
    total = r["regions"].get("step", r["wall_s"])  # profiler: the step region; timers: the wall time
    for k, v in r["regions"].items():
        print(f"{k:<44} {v:8.3f} {100 * v / total:6.1f}")
    if r["ops"]:
        print(f"{'aten op (self CPU s)':<44} {'s':>8} {'%':>6} {'calls':>7}")
        for k, (v, n) in r["ops"].items():
            print(f"{k:<44} {v:8.3f} {100 * v / total:6.1f} {n:7d}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", required=True, help="a checkpoint folder")
    p.add_argument("--tokens", type=int, default=8192, help="length of the one cold prompt")
    p.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32", help="weights, activations and cache")
    add_weights_args(p)
    p.add_argument("--budget", type=int, default=2048, help="max_num_batched_tokens (prefill chunk)")
    p.add_argument("--top", type=int, default=25, help="rows of the per-op table")
    p.add_argument("--timers", action="store_true", help="time regions with perf_counter instead of torch.profiler "
                   "(no per-op table; for 128K, where the profiler's event list itself gets slow)")
    p.add_argument("--decode", type=int, default=0, help="then profile this many decode steps")
    p.add_argument("--requests", type=int, default=1, help="requests of --tokens tokens each, decoding together")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default); 1 gives CPU seconds "
                   "that stay comparable on a loaded machine (no OpenMP spin-waits)")
    ns = p.parse_args(argv)
    if ns.threads:
        torch.set_num_threads(ns.threads)

    from inference.engine import Engine, EngineConfig, SamplingParams

    config = EngineConfig(max_num_batched_tokens=ns.budget, dtype=ns.dtype, max_num_seqs=max(16, ns.requests),
                          cache_bytes=max(256 << 20, ns.requests * ns.tokens * 4096), weights=ns.weights,
                          device=resolve_device(ns.device))
    eng = Engine.from_checkpoint(ns.checkpoint, config)
    vocab = eng.model.args.vocab_size
    warm = torch.randint(2, vocab, (256,), generator=torch.Generator().manual_seed(1)).tolist()
    eng.add_request("warm", warm, SamplingParams(max_tokens=1))
    while eng.has_unfinished():
        eng.step()
    instrument(eng.model)
    try:
        return _run(eng, ns)
    finally:
        uninstrument()


def _run(eng, ns) -> int:
    from inference.engine import SamplingParams

    vocab = eng.model.args.vocab_size
    for r in range(ns.requests):
        ids = torch.randint(2, vocab, (ns.tokens,), generator=torch.Generator().manual_seed(2 + r)).tolist()
        eng.add_request(f"p{r}", ids, SamplingParams(max_tokens=1 + ns.decode + ns.requests, ignore_eos=True))
    out = {"bench": "profile", "tokens": ns.tokens, "requests": ns.requests, "dtype": ns.dtype,
           "threads": torch.get_num_threads()}
    started: set[str] = set()

    def all_started(outs) -> bool:
        started.update(o.request_id for o in outs if o.new_token_ids)
        return len(started) == ns.requests

    out["prefill"] = profile_phase(eng, all_started, ns.timers, ns.top)
    report(f"prefill of {ns.requests} x {ns.tokens} tokens, chunk {ns.budget}", out["prefill"])
    if ns.decode:
        steps = iter(range(ns.decode - 1))
        out["decode"] = profile_phase(eng, lambda outs: next(steps, None) is None, ns.timers, ns.top)
        report(f"decode: {ns.decode} steps of {ns.requests} request(s) at context {ns.tokens}", out["decode"])
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
