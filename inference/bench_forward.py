"""python -m inference.bench_forward --checkpoint DIR [--tokens 8192] [--dtype float32]

CPU time and peak RSS of one prefill forward (last-position logits) of our model and of transformers'
DeepseekV4ForCausalLM on the same checkpoint, each in its own subprocess; prints a table then one JSON line."""

import argparse
import json
import resource
import subprocess
import sys
import time


# Peak resident memory (Linux: VmHWM, reset with clear_refs); inference.bench uses these too.
def peak_rss_mib() -> float:
    """Peak RSS in MiB since the last reset_peak_rss (the lifetime peak where /proc is unavailable)."""
    try:
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def reset_peak_rss() -> None:
    """Reset the kernel's peak-RSS mark so a phase's own peak is measured (Linux clear_refs 5)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def _usage() -> tuple[float, float]:
    """(CPU seconds of this process, peak RSS MiB since the last reset_peak_rss)."""
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime, peak_rss_mib()


def worker(impl: str, ckpt: str, tokens: int, dtype_name: str, seed: int, weights: str | None = None) -> dict:
    import torch

    dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}[dtype_name]
    if impl == "ours":
        from inference.checkpoint.loader import load_model
        from inference.model.runner import ModelRunner

        model = load_model(ckpt, dtype, weights=weights)
        runner = ModelRunner(model)
        vocab = model.args.vocab_size

        def run(ids):
            return runner(ids, last_only=True)[0, -1]
    else:
        from transformers import DeepseekV4ForCausalLM

        model = DeepseekV4ForCausalLM.from_pretrained(ckpt, dtype=dtype).eval()
        vocab = model.config.vocab_size

        def run(ids):
            return model(ids, use_cache=False, logits_to_keep=1).logits[0, -1]

    ids = torch.randint(2, vocab, (1, tokens), generator=torch.Generator().manual_seed(seed))
    cpu0, rss_loaded = _usage()
    reset_peak_rss()
    t0 = time.perf_counter()
    with torch.inference_mode():
        logits = run(ids).float()
    wall = time.perf_counter() - t0
    cpu1, rss_peak = _usage()
    return {"impl": impl, "tokens": tokens, "dtype": dtype_name, "threads": torch.get_num_threads(),
            "wall_s": round(wall, 3), "cpu_s": round(cpu1 - cpu0, 3), "peak_rss_load_mib": round(rss_loaded),
            "peak_rss_mib": round(rss_peak), "argmax": int(logits.argmax()),
            "logits_head": [round(float(x), 5) for x in logits[:4]]}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="forward CPU time / peak RSS: ours vs transformers")
    p.add_argument("--checkpoint", required=True, help="a checkpoint folder")
    p.add_argument("--tokens", type=int, default=8192, help="prompt length of the one forward")
    p.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32", help="weights and activations")
    p.add_argument("--weights", choices=("quantized", "dequantized"), default=None,
                   help="ours: keep FP8/FP4 weights as released or fold them at load (default: dequantized on CPU)")
    p.add_argument("--seed", type=int, default=0, help="random prompt from this seed")
    p.add_argument("--impl", choices=("ours", "hf", "both"), default="both",
                   help="which forward to run (each in its own process)")
    p.add_argument("--worker", choices=("ours", "hf"), help=argparse.SUPPRESS)
    ns = p.parse_args(argv)
    if ns.worker:
        print(json.dumps(worker(ns.worker, ns.checkpoint, ns.tokens, ns.dtype, ns.seed, ns.weights)))
        return 0
    results = []
    for impl in (("ours", "hf") if ns.impl == "both" else (ns.impl,)):
        cmd = [sys.executable, "-m", "inference.bench_forward", "--checkpoint", ns.checkpoint, "--tokens",
               str(ns.tokens), "--dtype", ns.dtype, "--seed", str(ns.seed), "--worker", impl]
        cmd += ["--weights", ns.weights] if ns.weights else []
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            results.append({"impl": impl, "error": proc.stderr.strip().splitlines()[-1:]})
            continue
        results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    print(f"{'impl':<6} {'tokens':>7} {'wall s':>8} {'cpu s':>8} {'load peak MiB':>13} {'fwd peak MiB':>13}")
    for r in results:
        if "error" in r:
            print(f"{r['impl']:<6} failed: {r['error']}")
            continue
        print(f"{r['impl']:<6} {r['tokens']:>7} {r['wall_s']:>8.2f} {r['cpu_s']:>8.2f} {r['peak_rss_load_mib']:>13} "
              f"{r['peak_rss_mib']:>13}")
    ok = [r for r in results if "error" not in r]
    summary = {"bench": "forward", "checkpoint": ns.checkpoint, "tokens": ns.tokens, "dtype": ns.dtype,
               "results": results}
    if len(ok) == 2:
        summary["same_argmax"] = ok[0]["argmax"] == ok[1]["argmax"]
        summary["cpu_ratio_hf_over_ours"] = round(ok[1]["cpu_s"] / max(ok[0]["cpu_s"], 1e-9), 2)
    print(json.dumps(summary))
    return 0 if len(ok) == len(results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
