"""python -m inference.server.bench_server --checkpoint DIR [--requests N] [--prompt-words W] [--max-tokens T]

What the HTTP layer costs: the same N concurrent requests (fixed output length, ignore_eos, greedy) run on a fresh
engine in-process (baseline) and through a real server on a fresh engine (uvicorn on 127.0.0.1, streamed SSE).
Prints a table, then one JSON line.
"""

from __future__ import annotations

import argparse
import json
import socket
import threading
import time

import httpx
import uvicorn

from inference.engine import Engine, EngineConfig, SamplingParams
from inference.server import ServerConfig, create_app
from inference.server.prompt import encode


def _sse_lines(parts):
    """SSE lines split at LF only (CRLF trimmed): random-weight text may hold U+2028 etc., where iter_lines splits."""
    buf = b""
    for part in parts:
        *lines, buf = (buf + part).split(b"\n")
        yield from (line.decode().removesuffix("\r") for line in lines)

def prompts(n: int, words: int) -> list[list[dict]]:
    return [[{"role": "user", "content": f"Request {i} of {n}. " + "lorem ipsum " * (words // 2)}] for i in range(n)]


def run_engine(engine: Engine, batch: list[list[dict]], max_tokens: int) -> dict:
    """Baseline: add every request, step until done; TTFT from the start of the run."""
    params = SamplingParams(max_tokens=max_tokens, ignore_eos=True)
    t0 = time.perf_counter()
    first: dict[str, float] = {}
    for i, msgs in enumerate(batch):
        engine.add_request(f"b{i}", encode(engine.tokenizer, msgs, thinking=False, effort=None), params)
    tokens = 0
    while engine.has_unfinished():
        for out in engine.step():
            if out.new_token_ids:
                first.setdefault(out.request_id, time.perf_counter() - t0)
                tokens += len(out.new_token_ids)
    return {"wall_s": time.perf_counter() - t0, "tokens": tokens, "ttft_s": sum(first.values()) / len(first)}


def run_server(engine: Engine, batch: list[list[dict]], max_tokens: int) -> dict:
    """The same requests over HTTP, all at once, each streamed by its own thread."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(engine, ServerConfig()), port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    first: list[float] = []
    tokens: list[int] = []

    def one(msgs: list[dict]) -> None:
        body = {"model": "wholedoc", "messages": msgs, "max_tokens": max_tokens, "ignore_eos": True,
                "temperature": 0, "stream": True, "stream_options": {"include_usage": True}}
        seen = False
        with httpx.stream("POST", url, json=body, timeout=600) as r:
            for line in _sse_lines(r.iter_bytes()):
                if not line.startswith("data: {"):
                    continue
                chunk = json.loads(line[6:])
                if chunk.get("usage"):
                    tokens.append(chunk["usage"]["completion_tokens"])
                elif not seen and chunk["choices"] and chunk["choices"][0]["delta"].get("content"):
                    seen = True
                    first.append(time.perf_counter() - t0)

    t0 = time.perf_counter()
    workers = [threading.Thread(target=one, args=(m,)) for m in batch]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    wall = time.perf_counter() - t0
    server.should_exit = True
    thread.join(10)
    return {"wall_s": wall, "tokens": sum(tokens), "ttft_s": sum(first) / max(1, len(first))}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", required=True, help="a checkpoint folder")
    p.add_argument("--requests", type=int, default=8, help="requests sent together")
    p.add_argument("--prompt-words", type=int, default=400, help="words in each prompt")
    p.add_argument("--max-tokens", type=int, default=32, help="tokens decoded per request")
    p.add_argument("--cache-gib", type=float, default=0.25, help="KV cache size of each engine, GiB")
    a = p.parse_args(argv)
    config = EngineConfig(max_num_seqs=a.requests, cache_bytes=int(a.cache_gib * (1 << 30)))
    batch = prompts(a.requests, a.prompt_words)
    engines = [Engine.from_checkpoint(a.checkpoint, config) for _ in range(2)]
    for engine in engines:  # NOTE: one warm-up run each: the first run of a process measured ~10x slower on CPU
        run_engine(engine, prompts(1, 20), 2)
    # NOTE: the baseline steps in its own thread, like the server's engine: torch on the main thread of a loaded
    # 2-core machine measured ~10x slower than in a worker thread, which would flatter HTTP
    base: dict = {}
    worker = threading.Thread(target=lambda: base.update(run_engine(engines[0], batch, a.max_tokens)), daemon=True)
    worker.start()
    worker.join()
    http = run_server(engines[1], batch, a.max_tokens)
    print(f"{'path':<10} {'wall s':>8} {'tokens':>7} {'tok/s':>8} {'mean TTFT s':>12}")
    for name, r in (("engine", base), ("http", http)):
        print(f"{name:<10} {r['wall_s']:>8.2f} {r['tokens']:>7} {r['tokens'] / r['wall_s']:>8.1f} {r['ttft_s']:>12.3f}")
    print(json.dumps({"bench": "server", "requests": a.requests, "prompt_words": a.prompt_words,
                      "max_tokens": a.max_tokens, "engine_tok_s": round(base["tokens"] / base["wall_s"], 2),
                      "http_tok_s": round(http["tokens"] / http["wall_s"], 2),
                      "http_overhead": round(http["wall_s"] / base["wall_s"] - 1, 4),
                      "engine_ttft_s": round(base["ttft_s"], 4), "http_ttft_s": round(http["ttft_s"], 4)}))


if __name__ == "__main__":
    main()
