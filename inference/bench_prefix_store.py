"""python -m inference.bench_prefix_store --checkpoint DIR: TTFT of a question after a document, cold vs restored
from a prefix snapshot vs hit in memory, and snapshot bytes per token beside the cache layout's figure.

For each document length: a cold run (writes the snapshot to a temporary folder store), a second question on the
same engine (memory hit), then a fresh engine on the same model and store (a restart: the prefix is restored).
`--crossover` also times cold prefill against a restore at short lengths (where restoring starts to pay: the
default --prefix-store-min-tokens). Prints a table, then one JSON line (docs/prefix-store.md#benchmark)."""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import torch

from inference.bench import rand_ids, run_request, warm_up


def make_engine(model, tok, ns, store):
    from inference.engine import Engine, EngineConfig

    eng = Engine(model, EngineConfig(max_num_batched_tokens=ns.budget, cache_bytes=ns.cache_mib << 20,
                                     dtype=ns.dtype, model_id="bench"), tok)
    eng.attach_prefix_store(store)
    return eng


def open_store(folder: str, model, min_tokens: int):
    from inference.prefix_store.config import PrefixStoreConfig
    from inference.prefix_store.store import PrefixStore

    return PrefixStore.open(PrefixStoreConfig(f"file://{folder}", min_tokens=min_tokens, restore_timeout_s=3600),
                            "bench", model.args.num_hidden_layers, maintain=False)


def settle(store) -> None:
    while store.pending_writes():
        time.sleep(0.01)


def snapshot_files(folder: str) -> list[Path]:
    return [p for p in Path(folder).rglob("*.safetensors") if "tags" not in p.parts]


def one_document(model, tok, ns, n: int, seed: int) -> dict:
    """cold, memory-hit and restored TTFT for a document of n tokens (+ ns.question), and the snapshot's size."""
    vocab = model.args.vocab_size
    doc = rand_ids(n, seed, vocab)
    q1, q2, q3 = (rand_ids(ns.question, seed + i, vocab) for i in (1, 2, 3))
    with tempfile.TemporaryDirectory(prefix="prefix-bench-") as folder:
        store = open_store(folder, model, ns.min_tokens)
        eng = make_engine(model, tok, ns, store)
        cold = run_request(eng, "cold", doc + q1, 1)
        settle(store)
        (snap,) = snapshot_files(folder)
        snap_bytes, snap_tokens = snap.stat().st_size, (len(doc + q1) // 128) * 128
        mem = run_request(eng, "memory", doc + q2, 1)
        layout = eng.layout
        del eng
        fresh = make_engine(model, tok, ns, open_store(folder, model, ns.min_tokens))
        restored = run_request(fresh, "restored", doc + q3, 1)
        del fresh
    return {"tokens": n, "cold_ttft_s": cold["ttft_s"], "memory_ttft_s": mem["ttft_s"],
            "memory_cached": mem["cached_tokens"], "restored_ttft_s": restored["ttft_s"],
            "restored_cached": restored["cached_tokens"], "snapshot_bytes": snap_bytes,
            "snapshot_bytes_per_token": snap_bytes / snap_tokens, "layout_bytes_per_token": layout.bytes_per_token,
            "window_state_bytes": layout.checkpoint_bytes, "load_avg": os.getloadavg()[0]}


def crossover(model, tok, ns, sizes: list[int], reps: int = 3) -> list[dict]:
    """Cold prefill vs restore TTFT at short prefixes (fresh engines, one store): medians of `reps` runs."""
    import statistics

    out = []
    vocab = model.args.vocab_size
    with tempfile.TemporaryDirectory(prefix="prefix-cross-") as folder:
        for i, n in enumerate(sizes):
            cold, restored, cached = [], [], None
            for r in range(reps):
                doc = rand_ids(n, 500 + 10 * i + r, vocab)
                store = open_store(folder, model, 128)
                cold.append(run_request(make_engine(model, tok, ns, store), "cold",
                                        doc + rand_ids(ns.question, 600 + 10 * i + r, vocab), 1)["ttft_s"])
                settle(store)
                got = run_request(make_engine(model, tok, ns, open_store(folder, model, 128)), "restored",
                                  doc + rand_ids(ns.question, 700 + 10 * i + r, vocab), 1)
                restored.append(got["ttft_s"])
                cached = got["cached_tokens"]
            out.append({"tokens": n, "cold_ttft_s": statistics.median(cold),
                        "restored_ttft_s": statistics.median(restored), "restored_cached": cached, "reps": reps,
                        "load_avg": os.getloadavg()[0]})
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", required=True, help="a checkpoint folder")
    p.add_argument("--docs", default="32768,131072", help="document lengths")
    p.add_argument("--question", type=int, default=50, help="tokens of the question after each document")
    p.add_argument("--crossover", default="256,512,1024,2048", help="short prefix lengths: cold vs restore ('' skips)")
    p.add_argument("--min-tokens", type=int, default=128, help="the store's write threshold in the runs")
    p.add_argument("--budget", type=int, default=2048, help="max_num_batched_tokens")
    p.add_argument("--cache-mib", type=int, default=512, help="the engine's KV cache, MiB")
    p.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32", help="weights, activations and cache")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ns = p.parse_args(argv)
    if ns.threads:
        torch.set_num_threads(ns.threads)
    from inference.checkpoint.loader import load_model
    from inference.engine import Engine, EngineConfig
    from inference.engine.pools import TORCH_DTYPES
    from inference.text.tokenizer import load_tokenizer

    model = load_model(ns.checkpoint, TORCH_DTYPES[ns.dtype])
    tok = load_tokenizer(ns.checkpoint) if (Path(ns.checkpoint) / "tokenizer.json").exists() else None
    warm_up(Engine(model, EngineConfig(cache_bytes=64 << 20, dtype=ns.dtype), tok))
    res = {"checkpoint": ns.checkpoint, "dtype": ns.dtype, "docs": [], "crossover": []}
    for i, n in enumerate(int(x) for x in ns.docs.split(",") if x):
        res["docs"].append(one_document(model, tok, ns, n, 100 + 10 * i))
        d = res["docs"][-1]
        print(f"# {n} tokens: cold {d['cold_ttft_s']:.2f} s, restored {d['restored_ttft_s']:.3f} s, memory "
              f"{d['memory_ttft_s']:.3f} s (load {d['load_avg']:.2f})", flush=True)
    sizes = [int(x) for x in ns.crossover.split(",") if x]
    if sizes:
        res["crossover"] = crossover(model, tok, ns, sizes)
    print(f"{'document':>10} {'cold TTFT s':>12} {'restored s':>11} {'memory s':>9} {'restored cached':>16} "
          f"{'snapshot B/token':>17} {'layout B/token':>15} {'load':>5}")
    for d in res["docs"]:
        print(f"{d['tokens']:>10} {d['cold_ttft_s']:>12.2f} {d['restored_ttft_s']:>11.3f} {d['memory_ttft_s']:>9.3f} "
              f"{d['restored_cached']:>16} {d['snapshot_bytes_per_token']:>17.1f} "
              f"{d['layout_bytes_per_token']:>15.1f} {d['load_avg']:>5.2f}")
    if res["crossover"]:
        print(f"\n{'prefix':>10} {'cold TTFT s':>12} {'restored s':>11} {'restored cached':>16} {'load':>5}")
        for c in res["crossover"]:
            print(f"{c['tokens']:>10} {c['cold_ttft_s']:>12.3f} {c['restored_ttft_s']:>11.3f} "
                  f"{c['restored_cached']:>16} {c['load_avg']:>5.2f}")
    print(json.dumps(res))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
