"""python -m inference.serve --checkpoint DIR [--host H] [--port P] [--max-model-len N] [--reference-numerics on|off] …

Serves a checkpoint over HTTP: OpenAI /v1/chat/completions, Anthropic /v1/messages, wholedoc's /v1/requests/{id},
/v1/cache/probe, /v1/tokenize, plus /v1/models, /health and /metrics. Also installed as `wholedoc-inference`.
"""

from __future__ import annotations

import argparse
import logging
import sys

from inference.checkpoint.modes import add_weights_args, resolve_device
from inference.errors import InferenceModelError

ON_OFF = {"on": True, "off": False}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="wholedoc-inference", description=__doc__.split("\n\n")[1])
    p.add_argument("--checkpoint", required=True, help="checkpoint directory (config.json, safetensors, tokenizer)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port to listen on (default 8000)")
    p.add_argument("--served-model-name", default="wholedoc", help="the model id clients name (default: wholedoc)")
    p.add_argument("--max-model-len", type=int, default=None, help="context window (default: the checkpoint's)")
    p.add_argument("--reference-numerics", choices=ON_OFF, default=None,
                   help="the release's quantized numerics (default: on when config.json has a quantization_config)")
    p.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"), help="weights, activations and cache")
    add_weights_args(p)
    from inference.parallel.spec import add_parallel_args

    add_parallel_args(p)
    p.add_argument("--max-num-seqs", type=int, default=16, help="requests running at once")
    p.add_argument("--max-num-batched-tokens", type=int, default=2048, help="tokens per engine step (prefill chunk)")
    p.add_argument("--max-waiting", type=int, default=64, help="queued requests before 429")
    p.add_argument("--cache-gib", type=float, default=None,
                   help="memory budget of the KV cache pools, GiB (default: from the memory plan, see inference.plan: "
                        "all the GPU leaves, or at most 2 on CPU); checked against the plan")
    p.add_argument("--thinking", choices=ON_OFF, default="off",
                   help="thinking mode for OpenAI requests that do not say (default: off)")
    p.add_argument("--default-max-tokens", type=int, default=4096, help="max_tokens when a request gives none")
    p.add_argument("--progress-interval", type=float, default=1.0,
                   help="seconds between `: progress` SSE comments of one prefilling request")
    p.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"), help="log threshold")
    from inference.prefix_store.cli import add_arguments as prefix_store_arguments

    prefix_store_arguments(p)
    return p.parse_args(argv)


def plan_cache_bytes(args: argparse.Namespace) -> int:
    """The pools' budget from the memory plan of this checkpoint on this device (an explicit --cache-gib is checked
    against it); logs the plan."""
    from pathlib import Path

    from inference.checkpoint.modes import default_weights
    from inference.memory_plan.sizing import GIB, serve_cache_bytes
    from inference.model.config import ModelArgs

    device = resolve_device(args.device)
    model_args = ModelArgs.from_file(Path(args.checkpoint) / "config.json")
    cache, plan = serve_cache_bytes(model_args, device=device, weights=args.weights or default_weights(device),
                                    dtype=args.dtype, max_num_seqs=args.max_num_seqs,
                                    chunk=args.max_num_batched_tokens, max_model_len=args.max_model_len,
                                    cache_gib=args.cache_gib, tp=args.tp, ep=args.ep)
    logging.getLogger("inference.serve").info(
        "memory plan on %s: weights %.2f GiB, workspace %.2f GiB, cache pools %.2f GiB (plan leaves %.2f)", device,
        plan.weights / GIB, plan.workspace / GIB, cache / GIB, plan.kv_pool / GIB)
    return cache


def store_fingerprint(args: argparse.Namespace) -> str:
    """The prefix store's model fingerprint from the resolved settings (docs/prefix-store.md): the weights mode this
    device serves by default and the reference-numerics value config.json implies, so replicas that hold their
    weights differently (a CUDA one quantized, a CPU one dequantized) never share snapshots."""
    import json
    from pathlib import Path

    from inference.checkpoint.modes import default_weights
    from inference.model.numerics import resolve_reference_numerics
    from inference.prefix_store.fingerprint import model_fingerprint

    config = json.loads((Path(args.checkpoint) / "config.json").read_text())
    weights = args.weights or default_weights(resolve_device(args.device))
    return model_fingerprint(args.checkpoint, args.dtype, resolve_reference_numerics(config, args.reference_numerics),
                             weights)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    import uvicorn

    from inference.engine import Engine, EngineConfig
    from inference.parallel.spec import spec_from_args
    from inference.prefix_store.cli import config_from_args
    from inference.server import ServerConfig, create_app

    parallel = None
    try:
        spec = spec_from_args(args)
        store_config = config_from_args(args)
        # with a store, the block keys name the model by its fingerprint, not its path: replicas share snapshots
        fingerprint = store_fingerprint(args) if store_config else ""
        engine_config = EngineConfig(model_id=fingerprint,
            max_model_len=args.max_model_len, max_num_seqs=args.max_num_seqs,
            max_num_batched_tokens=args.max_num_batched_tokens, cache_bytes=plan_cache_bytes(args),
            max_waiting=args.max_waiting, dtype=args.dtype, weights=args.weights, device=resolve_device(args.device),
            reference_numerics=None if args.reference_numerics is None else ON_OFF[args.reference_numerics])
        if spec.enabled:  # ranks 1 … W-1 serve rank 0's engine (docs/parallel.md), its restores included
            from inference.parallel.serving import start_parallel

            parallel = start_parallel(spec, args.checkpoint, engine_config, args.log_level)
            engine = parallel.engine
        else:
            engine = Engine.from_checkpoint(args.checkpoint, engine_config)
        if store_config is not None:
            from inference.prefix_store import PrefixStore

            engine.attach_prefix_store(PrefixStore.open(store_config, fingerprint, engine.model.args.num_hidden_layers))
        if engine.tokenizer is None:
            raise OSError("the checkpoint has no tokenizer.json (devcheckpoint writes one for the V4 vocabulary)")
        config = ServerConfig(model_name=args.served_model_name, default_thinking=ON_OFF[args.thinking],
                              default_max_tokens=args.default_max_tokens, progress_interval_s=args.progress_interval)
    except (InferenceModelError, OSError, AssertionError) as e:
        print(f"wholedoc-inference: cannot serve {args.checkpoint}: {e}", file=sys.stderr)
        return 2
    app = create_app(engine, config)
    print(f"wholedoc-inference: serving {args.checkpoint} as {args.served_model_name!r} "
          f"(max_model_len {engine.max_model_len}) on http://{args.host}:{args.port}/v1", flush=True)
    if parallel is not None:
        from inference.parallel.serving import run_server

        return run_server(app, parallel, args.host, args.port, args.log_level)
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level, timeout_graceful_shutdown=5)
    return 0


if __name__ == "__main__":
    sys.exit(main())
