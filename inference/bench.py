"""python -m inference.bench --checkpoint DIR: the engine on CPU beside transformers on the same checkpoint.

Measures prefill/decode tokens/s at 2K and 8K (HF in a subprocess, so its memory stays apart), aggregate decode
tokens/s of 16 requests decoding together vs one alone (batched compute: one forward per step), 16 questions about
one cold 8K document at once (prompt tokens vs tokens computed: the document is prefilled once), TTFT of a 50-token
question after a cold vs a cached document, a long cold prefill (time, peak RSS), cache bytes per token (allocator)
and prefill efficiency (model FLOP/s ÷ this machine's fp32 matmul FLOP/s). Prints a table, then one JSON line."""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

from inference.bench_forward import peak_rss_mib, reset_peak_rss
from inference.checkpoint.loader import add_weights_args, resolve_device
from inference.model.config import CSA, HCA, SLIDING, ModelArgs


def matmul_flops_per_s(n: int = 1024, seconds: float = 1.0, dtype: torch.dtype = torch.float32) -> float:
    """Matmul throughput (fp32 unless dtype) of this machine right now (same process, same threads)."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b
    reps, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        a @ b
        reps += 1
    return 2 * n**3 * reps / (time.perf_counter() - t0)


def model_prefill_flops(args: ModelArgs, n: int, active_params: int) -> float:
    """2·active params per token, plus attention (kernels.flops: window, CSA top-k + indexer, HCA) over n positions."""
    from kernels.flops import AttnShape, prefill_flops

    ratios = [args.compress_ratios[i] for i in range(args.num_hidden_layers)]
    csa = next((r for r, t in zip(ratios, args.attn_types) if t == CSA), 4)
    hca = next((r for r, t in zip(ratios, args.attn_types) if t == HCA), 128)
    shape = AttnShape(args.num_attention_heads, args.head_dim, args.sliding_window, args.index_n_heads,
                      args.index_head_dim, args.index_topk, csa, hca)
    kinds = {SLIDING: "swa", CSA: "csa", HCA: "hca"}
    attn = sum(prefill_flops(kinds[args.attn_types[i]], n, n, shape) for i in range(args.num_hidden_layers))
    return 2.0 * active_params * n + attn + 2.0 * args.hidden_size * args.vocab_size  # + head at the last position


def _weights(model):
    """(name, tensor, weights it holds) of every parameter, plus the FP8 / packed FP4 buffers and their scales of a
    model loaded with --weights quantized (two FP4 weights per byte; scales hold none)."""
    for name, p in model.named_parameters():
        yield name, p, p.numel()
    for name, b in model.named_buffers():
        if b.dtype in (torch.float8_e4m3fn, torch.int8, torch.uint8):
            scale = name.endswith(("scale", "_scale"))
            yield name, b, 0 if scale else b.numel() * (2 if b.dtype == torch.int8 else 1)


def active_params(model) -> int:
    """Parameters one prompt token uses: all but the embedding, the output head (last position only), MTP and the
    routed experts it is not sent to."""
    a, total = model.args, 0
    for name, _, n in _weights(model):
        if name.startswith(("mtp.", "embed.", "head.")):
            continue
        if ".ffn.experts." in name:
            total += n * a.num_experts_per_tok // a.n_routed_experts
        else:
            total += n
    return total


def llc_bytes() -> int:
    """Size of the last-level cache (Linux sysfs; 32 MiB when it cannot be read)."""
    best = 0
    for index in Path("/sys/devices/system/cpu/cpu0/cache").glob("index*"):
        try:
            size = (index / "size").read_text().strip()
        except OSError:
            continue
        mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(size[-1:], 1)
        best = max(best, int(size.rstrip("KMG")) * mult)
    return best or 32 << 20


def copy_bandwidth(nbytes: int, reps: int = 5) -> float:
    """Bytes/s of torch copying a buffer of nbytes (read + written, counted as 2·nbytes, STREAM's convention)."""
    src = torch.ones(nbytes // 4)
    dst = torch.empty_like(src)
    dst.copy_(src)
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        dst.copy_(src)
        best = min(best, time.perf_counter() - t0)
    return 2 * src.numel() * 4 / best


def decode_weight_bytes(model) -> int:
    """Weight bytes one decode step of one token reads: every layer's attention, router, shared expert, norm and mHC
    weights, the num_experts_per_tok routed experts it is sent to, one embedding row, the final norm / hc head and
    the whole output head (no MTP)."""
    a, total = model.args, 0
    for name, p, _ in _weights(model):
        size = p.numel() * p.element_size()
        if name.startswith("mtp."):
            continue
        if name.startswith("embed."):
            total += a.hidden_size * p.element_size()
        elif ".ffn.experts." in name:
            total += size * a.num_experts_per_tok // a.n_routed_experts
        else:
            total += size
    return total


def run_request(eng, rid: str, ids: list[int], max_tokens: int) -> dict:
    """Run one request alone; TTFT, decode seconds after the first token, cached tokens."""
    from inference.engine import SamplingParams

    t0 = time.perf_counter()
    eng.add_request(rid, ids, SamplingParams(max_tokens=max_tokens, ignore_eos=True))
    t_first, last = None, None
    while eng.has_unfinished():
        for o in eng.step():
            if o.new_token_ids and t_first is None:
                t_first = time.perf_counter()
            last = o
    t_end = time.perf_counter()
    return {"ttft_s": t_first - t0, "decode_s": t_end - t_first, "cached_tokens": last.cached_tokens,
            "tokens": last.completion_tokens}


def run_concurrent(eng, n_req: int, prompt: int, decode: int, vocab: int) -> dict:
    """n_req requests of `prompt` tokens submitted at once: prefill tokens/s of the whole set, then aggregate decode
    tokens/s over `decode` steps in which all n_req requests decode (one forward call per step for all of them)."""
    from inference.engine import SamplingParams
    from inference.engine.sequence import Status

    spare = -(-n_req * prompt // eng.config.max_num_batched_tokens) + 2  # the first ones decode while others prefill
    t0 = time.perf_counter()
    for i in range(n_req):
        eng.add_request(f"batch{i}", rand_ids(prompt, 5000 + i, vocab),
                        SamplingParams(max_tokens=decode + spare, ignore_eos=True))
    running = eng.scheduler.running
    while len(running) < n_req or any(s.status != Status.DECODING for s in running):
        eng.step()
    t1 = time.perf_counter()
    tokens = sum(len(o.new_token_ids) for _ in range(decode) for o in eng.step())
    t2 = time.perf_counter()
    while eng.has_unfinished():
        eng.step()
    return {"requests": n_req, "prompt_tokens": prompt, "to_all_decoding_s": t1 - t0, "decode_steps": decode,
            "decode_tokens": tokens, "decode_tok_s": tokens / (t2 - t1)}


def run_bulk_questions(eng, n_q: int, doc_tokens: int, question: int, vocab: int) -> dict:
    """n_q questions about one cold document submitted together (bulk Q&A): wall seconds until all have their first
    token, and prompt tokens submitted vs prefill tokens the engine computed (the document should be computed once)."""
    from inference.engine import SamplingParams

    doc = rand_ids(doc_tokens, 7000, vocab)
    before, t0, first = eng.prefill_tokens, time.perf_counter(), set()
    for i in range(n_q):
        eng.add_request(f"bulk{i}", doc + rand_ids(question, 7100 + i, vocab), SamplingParams(max_tokens=1))
    while eng.has_unfinished():
        first |= {o.request_id for o in eng.step() if o.new_token_ids}
    submitted = n_q * (doc_tokens + question)
    computed = eng.prefill_tokens - before
    return {"questions": n_q, "doc_tokens": doc_tokens, "seconds": time.perf_counter() - t0,
            "prompt_tokens": submitted, "prefill_tokens_computed": computed, "saving": submitted / computed,
            "answered": len(first)}


def hf_worker(ckpt: str, n: int, decode: int, seed: int, dtype: str = "float32") -> dict:
    """transformers' DeepseekV4ForCausalLM: one prefill of n tokens, then `decode` cached decode steps."""
    from transformers import DeepseekV4ForCausalLM

    model = DeepseekV4ForCausalLM.from_pretrained(ckpt, dtype=getattr(torch, dtype)).eval()
    ids = torch.randint(2, model.config.vocab_size, (1, n), generator=torch.Generator().manual_seed(seed))
    reset_peak_rss()
    with torch.no_grad():
        t0 = time.perf_counter()
        out = model(ids, use_cache=True, logits_to_keep=1)
        t1 = time.perf_counter()
        past, tok = out.past_key_values, out.logits[:, -1].argmax(-1, keepdim=True)
        for _ in range(decode):
            out = model(tok, past_key_values=past, use_cache=True)
            past, tok = out.past_key_values, out.logits[:, -1].argmax(-1, keepdim=True)
        t2 = time.perf_counter()
    return {"prefill_tok_s": n / (t1 - t0), "decode_tok_s": decode / (t2 - t1), "peak_rss_mib": peak_rss_mib()}


def run_hf(ckpt: str, n: int, decode: int, timeout_s: float, dtype: str = "float32") -> dict:
    cmd = [sys.executable, "-m", "inference.bench", "--hf-worker", "--checkpoint", ckpt, "--n", str(n),
           "--decode", str(decode), "--dtype", dtype]
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout_s:.0f} s"}
    if p.returncode != 0:
        return {"error": f"exit {p.returncode}: {(p.stderr.strip().splitlines() or ['?'])[-1][:200]}"}
    return json.loads(p.stdout.strip().splitlines()[-1])


def rand_ids(n: int, seed: int, vocab: int) -> list[int]:
    return torch.randint(2, vocab, (n,), generator=torch.Generator().manual_seed(seed)).tolist()


def decode_bound(model, context: int, ours: dict) -> dict:
    """The weight-read bound of one decode step beside the measured one (memory bandwidth measured now)."""
    llc = llc_bytes()
    buf = max(8 * llc, 256 << 20)
    bw = copy_bandwidth(buf)
    nbytes = decode_weight_bytes(model)
    step = 1 / ours["decode_tok_s"]
    return {"context": context, "weight_bytes": nbytes, "bandwidth_bytes_per_s": bw, "llc_bytes": llc,
            "copy_buffer_bytes": buf, "bound_s": nbytes / bw, "measured_step_s": step,
            "step_over_bound": step / (nbytes / bw)}


def bf16_divergence(ckpt: str, n: int, seed: int = 3) -> dict:
    """The same prompt through the model in fp32 and in bf16 (weights, activations, cache), n positions' logits
    compared: max and mean |Δlogit|, top-1 agreement, mean KL(fp32 ‖ bf16)."""
    from inference.checkpoint.loader import load_model
    from inference.model.runner import ModelRunner

    logits = {}
    for dt in (torch.float32, torch.bfloat16):
        model = load_model(ckpt, dt)
        ids = torch.tensor([rand_ids(n, seed, model.args.vocab_size)])
        logits[dt] = ModelRunner(model)(ids, chunk_tokens=2048)[0].float()
        del model
    a, b = logits[torch.float32], logits[torch.bfloat16]
    kl = (a.log_softmax(-1).exp() * (a.log_softmax(-1) - b.log_softmax(-1))).sum(-1)
    return {"tokens": n, "max_abs_logit_diff": float((a - b).abs().max()), "mean_abs_logit_diff":
            float((a - b).abs().mean()), "logit_std_fp32": float(a.std()),
            "top1_agreement": float((a.argmax(-1) == b.argmax(-1)).float().mean()), "mean_kl": float(kl.mean())}


def plot_engine(res: dict, path: str) -> None:
    """Two panels: prefill seconds against context (ours, transformers where it ran, the FLOP limit at the measured
    matmul rate) and TTFT of a question after a cold vs a cached document. Needs matplotlib (the `bench` extra)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4.2))
    ours = {int(n): int(n) / c["ours"]["prefill_tok_s"] for n, c in res["contexts"].items()}
    ours.update({int(d) + res["question_tokens"]: v["cold_ttft_s"] for d, v in res["docs"].items()})
    hf = {int(n): int(n) / c["hf"]["prefill_tok_s"] for n, c in res["contexts"].items() if "prefill_tok_s" in c["hf"]}
    limit = {int(n): s for n, s in res["prefill_flop_limit_s"].items()}
    for data, label, style in ((ours, "ours (engine, cold)", "o-"), (hf, "HF transformers", "s--"),
                               (limit, f"FLOP limit ({res['matmul_flops_per_s'] / 1e9:.0f} GFLOP/s matmul)", ":")):
        if data:
            xs = sorted(data)
            a1.plot(xs, [data[x] for x in xs], style, label=label)
    a1.set(xscale="log", yscale="log", xlabel="context tokens", ylabel="prefill seconds",
           title=f"prefill time ({res['dtype']})")
    a1.legend()
    docs = sorted(res["docs"], key=int)
    x = range(len(docs))
    a2.bar([i - 0.2 for i in x], [res["docs"][d]["cold_ttft_s"] for d in docs], 0.4, label="cold document")
    a2.bar([i + 0.2 for i in x], [res["docs"][d]["cached_ttft_s"] for d in docs], 0.4, label="cached document")
    a2.set(yscale="log", xticks=list(x), xticklabels=[f"{int(d) // 1024}K" for d in docs], xlabel="document tokens",
           ylabel="TTFT of a question (s)", title="time to first token: cold vs cached")
    a2.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def warm_up(eng) -> None:
    """One short request, so the first measured one does not pay for first-call setup (allocator, thread pool)."""
    from inference.engine import SamplingParams

    eng.add_request("warm-up", rand_ids(300, 1, eng.model.args.vocab_size), SamplingParams(max_tokens=3))
    while eng.has_unfinished():
        eng.step()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", required=True, help="a checkpoint folder")
    p.add_argument("--contexts", default="2048,8192", help="prefill/decode context lengths")
    p.add_argument("--docs", default="8192,32768,131072", help="document lengths for cold vs cached TTFT")
    p.add_argument("--question", type=int, default=50, help="tokens of the question after each document")
    p.add_argument("--concurrent", type=int, default=16, help="requests decoding together (0: skip)")
    p.add_argument("--concurrent-prompt", type=int, default=1024, help="prompt tokens of each concurrent request")
    p.add_argument("--bulk", type=int, default=16, help="questions about one cold document at once (0: skip)")
    p.add_argument("--bulk-doc", type=int, default=8192, help="document tokens of the bulk questions")
    p.add_argument("--decode", type=int, default=16, help="decode steps timed at each context")
    p.add_argument("--budget", type=int, default=2048, help="max_num_batched_tokens")
    p.add_argument("--cache-mib", type=int, default=512, help="cache_bytes of the engine (pools are resident)")
    p.add_argument("--hf-max", type=int, default=8192, help="skip transformers above this many tokens (OOM)")
    p.add_argument("--hf-timeout", type=float, default=900, help="seconds before a transformers run is given up")
    p.add_argument("--no-hf", action="store_true", help="skip the transformers baseline")
    p.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32",
                   help="weights, activations and cache (efficiency is against the matmul rate of this dtype)")
    add_weights_args(p)
    p.add_argument("--divergence-tokens", type=int, default=2048, help="with --dtype bfloat16: positions whose "
                   "logits are compared with fp32 (0: skip)")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default); 1 is steadier on a "
                   "shared machine")
    p.add_argument("--plot", metavar="FILE.png", help="also draw prefill time and TTFT against context (matplotlib)")
    p.add_argument("--hf-worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--n", type=int, default=0, help=argparse.SUPPRESS)
    ns = p.parse_args(argv)
    if ns.hf_worker:
        print(json.dumps(hf_worker(ns.checkpoint, ns.n, ns.decode, seed=1, dtype=ns.dtype)))
        return 0

    from inference.engine import Engine, EngineConfig

    if ns.threads:
        torch.set_num_threads(ns.threads)
    contexts = [int(x) for x in ns.contexts.split(",") if x]
    docs = [int(x) for x in ns.docs.split(",") if x]
    flops_s = matmul_flops_per_s(dtype=getattr(torch, ns.dtype))
    eng = Engine.from_checkpoint(ns.checkpoint, EngineConfig(max_num_batched_tokens=ns.budget,
                                                             cache_bytes=ns.cache_mib << 20, dtype=ns.dtype,
                                                             max_num_seqs=max(16, ns.concurrent), weights=ns.weights,
                                                             device=resolve_device(ns.device)))
    warm_up(eng)
    vocab, res, seed = eng.model.args.vocab_size, {"contexts": {}, "docs": {}}, 100
    act = active_params(eng.model)
    rows = []
    for n in contexts:
        seed += 1
        mm = matmul_flops_per_s(dtype=getattr(torch, ns.dtype))  # the rate right before, under the same load
        r = run_request(eng, f"ctx{n}", rand_ids(n, seed, vocab), ns.decode + 1)
        ours = {"prefill_tok_s": n / r["ttft_s"], "decode_tok_s": ns.decode / r["decode_s"],
                "model_flops_per_s": model_prefill_flops(eng.model.args, n, act) / r["ttft_s"],
                "matmul_flops_per_s": mm, "load_avg": os.getloadavg()[0]}
        ours["prefill_efficiency"] = ours["model_flops_per_s"] / mm
        hf = ({"skipped": "--no-hf"} if ns.no_hf else {"skipped": f"> --hf-max {ns.hf_max} (OOM)"}
              if n > ns.hf_max else run_hf(ns.checkpoint, n, ns.decode, ns.hf_timeout, ns.dtype))
        res["contexts"][n] = {"ours": ours, "hf": hf}
        for what in ("prefill_tok_s", "decode_tok_s"):
            h = hf.get(what)
            rows.append((f"{what} @{n}", ours[what], h, ours[what] / h if h else None))
    if ns.concurrent:  # baseline: the same prompt length decoding alone, same engine, same run
        seed += 1
        solo = run_request(eng, "solo", rand_ids(ns.concurrent_prompt, seed, vocab), ns.decode + 1)
        res["concurrent"] = run_concurrent(eng, ns.concurrent, ns.concurrent_prompt, ns.decode, vocab)
        res["concurrent"]["solo_decode_tok_s"] = ns.decode / solo["decode_s"]
        rows.append((f"decode tok/s, {ns.concurrent} requests @{ns.concurrent_prompt} vs 1",
                     res["concurrent"]["decode_tok_s"], res["concurrent"]["solo_decode_tok_s"],
                     res["concurrent"]["decode_tok_s"] / res["concurrent"]["solo_decode_tok_s"]))
    if ns.bulk:
        b = res["bulk"] = run_bulk_questions(eng, ns.bulk, ns.bulk_doc, ns.question, vocab)
        rows.append((f"bulk: {ns.bulk} q @{ns.bulk_doc} doc, prompt / computed tok", float(b["prompt_tokens"]),
                     float(b["prefill_tokens_computed"]), b["saving"]))
        rows.append((f"bulk: {ns.bulk} q @{ns.bulk_doc} doc, seconds", b["seconds"], None, None))
    for d in docs:
        seed += 1
        doc = rand_ids(d, seed, vocab)
        mm = matmul_flops_per_s(dtype=getattr(torch, ns.dtype))
        reset_peak_rss()
        cold = run_request(eng, f"cold{d}", doc + rand_ids(ns.question, seed + 1000, vocab), 1)
        peak = peak_rss_mib()
        hot = run_request(eng, f"hot{d}", doc + rand_ids(ns.question, seed + 2000, vocab), 1)
        res["docs"][d] = {"cold_ttft_s": cold["ttft_s"], "cached_ttft_s": hot["ttft_s"],
                          "cached_tokens": hot["cached_tokens"], "cold_prefill_peak_rss_mib": peak,
                          "matmul_flops_per_s": mm, "load_avg": os.getloadavg()[0]}
        rows.append((f"TTFT q{ns.question} after doc {d}: cold / cached (s)", cold["ttft_s"], hot["ttft_s"],
                     cold["ttft_s"] / hot["ttft_s"]))
    pools = eng.pools
    hist = sum(t.numel() * t.element_size() for t in pools.rows + pools.keys if t is not None)
    res["cache"] = {"allocator_bytes_per_token": hist / (pools.num_blocks * 128),
                    "layout": eng.layout.report(), "pool_bytes": pools.nbytes()}
    res["matmul_flops_per_s"] = flops_s
    res["dtype"], res["question_tokens"], res["threads"] = ns.dtype, ns.question, torch.get_num_threads()
    res["load_avg"] = os.getloadavg()[0]
    res["peak_rss_mib"] = peak_rss_mib()
    if docs:
        big = max(docs)
        secs = res["docs"][big]["cold_ttft_s"]
        res["long_cold_prefill"] = {"tokens": big + ns.question, "seconds": secs,
                                    "peak_rss_mib": res["docs"][big]["cold_prefill_peak_rss_mib"],
                                    "prefill_efficiency": model_prefill_flops(eng.model.args, big + ns.question, act)
                                    / secs / res["docs"][big]["matmul_flops_per_s"],
                                    "matmul_flops_per_s": res["docs"][big]["matmul_flops_per_s"],
                                    "load_avg": res["docs"][big]["load_avg"]}
    if ns.dtype == "bfloat16" and ns.divergence_tokens:
        res["bf16_divergence"] = bf16_divergence(ns.checkpoint, ns.divergence_tokens)
        dv = res["bf16_divergence"]
        print(f"bf16 vs fp32 over {dv['tokens']} positions: max |dlogit| {dv['max_abs_logit_diff']:.4f}, mean "
              f"{dv['mean_abs_logit_diff']:.5f} (logit std {dv['logit_std_fp32']:.3f}), top-1 agreement "
              f"{dv['top1_agreement']:.4f}, mean KL {dv['mean_kl']:.2e}")
    lengths = sorted(set(contexts) | {d + ns.question for d in docs})
    res["prefill_flop_limit_s"] = {n: model_prefill_flops(eng.model.args, n, act) / flops_s for n in lengths}
    if contexts:
        res["decode_bound"] = decode_bound(eng.model, max(contexts), res["contexts"][max(contexts)]["ours"])
    print(f"{'metric':<48} {'ours':>12} {'HF/cached/1':>12} {'ratio':>8}")
    for name, a, b, r in rows:
        fmt = lambda v: f"{v:12.2f}" if isinstance(v, float) else f"{'-':>12}"  # noqa: E731
        print(f"{name:<48} {fmt(a)} {fmt(b)} {r if r is None else round(r, 2)!s:>8}")
    c8 = res["contexts"].get(8192, {}).get("ours")
    if c8:
        print(f"prefill efficiency @8192: {c8['prefill_efficiency']:.3f} of {c8['matmul_flops_per_s'] / 1e9:.1f} "
              f"GFLOP/s {ns.dtype} matmul measured just before (load {c8['load_avg']:.2f})")
    if docs:
        lc = res["long_cold_prefill"]
        print(f"cold prefill {lc['tokens']} tokens: {lc['seconds']:.1f} s, efficiency {lc['prefill_efficiency']:.3f} "
              f"of {lc['matmul_flops_per_s'] / 1e9:.1f} GFLOP/s, peak RSS {lc['peak_rss_mib']:.0f} MiB "
              f"(load {lc['load_avg']:.2f})")
    if contexts:
        db = res["decode_bound"]
        print(f"decode @{db['context']}: {db['weight_bytes'] / 1e6:.1f} MB weights/token at "
              f"{db['bandwidth_bytes_per_s'] / 1e9:.1f} GB/s copy bandwidth -> bound {db['bound_s'] * 1e3:.2f} ms; "
              f"measured step {db['measured_step_s'] * 1e3:.2f} ms = {db['step_over_bound']:.2f}x the bound")
    print(f"cache bytes/token (allocator): {res['cache']['allocator_bytes_per_token']:.1f}; "
          f"peak RSS {res['peak_rss_mib']:.0f} MiB")
    print(json.dumps(res))
    if ns.plot:
        plot_engine(res, ns.plot)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
