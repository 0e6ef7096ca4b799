"""python -m inference.parallel.bench --checkpoint DIR [--tp 2] [--ep 2] [--requests 4] [--prompt-tokens 512]
[--max-tokens 16]: one engine workload on one process, then on max(tp, ep) ranks (docs/parallel.md).

Prints a table (prefill and decode tokens/s, each way) and one JSON line. On a CPU host the ranks share its cores,
so the ratio measures the protocol's and the collectives' overhead, not a speed-up."""

from __future__ import annotations

import argparse
import json
import time

import torch

from inference.checkpoint.loader import load_model
from inference.engine import Engine, EngineConfig, SamplingParams
from inference.parallel.launch import LoadSpec
from inference.parallel.serving import start_engine
from inference.parallel.spec import ParallelSpec


def workload(eng: Engine, requests: int, prompt_tokens: int, max_tokens: int) -> dict:
    gen = torch.Generator().manual_seed(0)
    for i in range(requests):
        ids = torch.randint(2, 100000, (prompt_tokens,), generator=gen).tolist()
        eng.add_request(str(i), ids, SamplingParams(max_tokens=max_tokens, ignore_eos=True))
    t0, t_first = time.perf_counter(), None
    while eng.has_unfinished():
        eng.step()
        if t_first is None and eng.stats().num_running and eng.decode_tokens:
            t_first = time.perf_counter()
    t1 = time.perf_counter()
    st = eng.stats()
    prefill_s = (t_first or t1) - t0
    return {"prefill_tok_s": st.prefill_tokens / prefill_s, "decode_tok_s": st.decode_tokens / max(1e-9, t1 - t_first)
            if t_first else 0.0, "seconds": t1 - t0}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", required=True, help="a checkpoint folder")
    p.add_argument("--tp", type=int, default=2, help="tensor-parallel ranks (attention heads)")
    p.add_argument("--ep", type=int, default=2, help="expert-parallel ranks (routed experts)")
    p.add_argument("--requests", type=int, default=4, help="requests run together")
    p.add_argument("--prompt-tokens", type=int, default=512, help="random prompt tokens per request")
    p.add_argument("--max-tokens", type=int, default=16, help="tokens decoded per request")
    ns = p.parse_args(argv)
    config = EngineConfig(cache_bytes=256 << 20, max_num_batched_tokens=512, max_num_seqs=ns.requests)
    one = workload(Engine(load_model(ns.checkpoint), config), ns.requests, ns.prompt_tokens, ns.max_tokens)
    pe = start_engine(ParallelSpec(tp=ns.tp, ep=ns.ep, timeout_s=300), LoadSpec(ns.checkpoint), config)
    try:
        many = workload(pe.engine, ns.requests, ns.prompt_tokens, ns.max_tokens)
    finally:
        pe.close()
    layout = f"tp{ns.tp} ep{ns.ep}"
    print(f"{'':<16}{'prefill tok/s':>15}{'decode tok/s':>15}")
    for name, r in (("one process", one), (layout, many)):
        print(f"{name:<16}{r['prefill_tok_s']:>15.1f}{r['decode_tok_s']:>15.1f}")
    print(json.dumps({"checkpoint": ns.checkpoint, "tp": ns.tp, "ep": ns.ep, "requests": ns.requests,
                      "prompt_tokens": ns.prompt_tokens, "max_tokens": ns.max_tokens, "one_process": one,
                      "parallel": many, "threads": torch.get_num_threads()}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
