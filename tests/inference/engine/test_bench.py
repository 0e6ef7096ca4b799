"""inference.bench runs end to end at toy sizes and ends with one JSON line (speed is never asserted)."""

import json

import pytest

from inference import bench


def test_bench_prints_table_then_one_json_line(tiny_checkpoint, capsys):
    assert bench.main(["--checkpoint", str(tiny_checkpoint), "--contexts", "160", "--docs", "200", "--question", "8",
                       "--decode", "2", "--budget", "128", "--cache-mib", "16", "--no-hf", "--concurrent", "3",
                       "--concurrent-prompt", "20", "--bulk", "3", "--bulk-doc", "300"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].split()[:2] == ["metric", "ours"]
    res = json.loads(lines[-1])
    assert res["contexts"]["160"]["hf"] == {"skipped": "--no-hf"}
    assert res["docs"]["200"]["cached_tokens"] == 128  # the document's one full block, via its checkpoint
    assert res["cache"]["allocator_bytes_per_token"] == 208.0  # tiny: 2 CSA × (64+32)·4/4 + HCA 64·4/16
    assert res["contexts"]["160"]["ours"]["prefill_efficiency"] > 0
    assert res["concurrent"]["decode_tokens"] == 3 * 2  # every measured step decoded all three requests
    bulk = res["bulk"]  # 3 × (300 + 8) submitted; the two full blocks (256) are computed once
    assert (bulk["prompt_tokens"], bulk["prefill_tokens_computed"], bulk["answered"]) == (924, 924 - 2 * 256, 3)
    lc = res["long_cold_prefill"]
    assert lc["tokens"] == 208 and lc["seconds"] > 0 and lc["peak_rss_mib"] > 0 and lc["prefill_efficiency"] > 0
    db = res["decode_bound"]
    assert db["context"] == 160 and db["copy_buffer_bytes"] >= 8 * db["llc_bytes"]
    assert db["bound_s"] == db["weight_bytes"] / db["bandwidth_bytes_per_s"] and db["measured_step_s"] > 0


def test_decode_weight_bytes_count_what_one_token_reads(tiny_checkpoint):
    """Attention/shared/mHC weights, k of the routed experts, one embedding row, the whole head; no MTP."""
    from inference.checkpoint.loader import load_model

    m = load_model(tiny_checkpoint)
    a, el = m.args, 4
    per_expert = 3 * a.hidden_size * a.moe_intermediate_size * el
    dense = sum(p.numel() * el for n, p in m.named_parameters()
                if not n.startswith(("mtp.", "embed.")) and ".ffn.experts." not in n)
    want = dense + a.num_hidden_layers * a.num_experts_per_tok * per_expert + a.hidden_size * el
    assert bench.decode_weight_bytes(m) == want


def test_bench_bfloat16_and_plot(tiny_checkpoint, capsys, tmp_path):
    """--dtype bfloat16 runs the engine in bf16 (efficiency against the bf16 matmul rate); --plot writes the PNG."""
    pytest.importorskip("matplotlib")
    png = tmp_path / "engine.png"
    assert bench.main(["--checkpoint", str(tiny_checkpoint), "--contexts", "160", "--docs", "200", "--question", "8",
                       "--decode", "2", "--budget", "128", "--cache-mib", "16", "--no-hf", "--concurrent", "0",
                       "--bulk", "0", "--dtype", "bfloat16", "--plot", str(png)]) == 0
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert res["dtype"] == "bfloat16" and res["cache"]["layout"]["dtype"] == "bfloat16"
    assert png.stat().st_size > 10_000 and png.read_bytes()[:4] == b"\x89PNG"


def test_bench_profile_labels_regions_and_puts_the_model_back(tiny_checkpoint, capsys):
    """inference.bench_profile times the regions of a prefill and a decode (profiler and timers), then unwraps."""
    from inference import bench_profile
    from inference.model import model

    attend = model.attend
    for extra in ([], ["--timers"]):
        assert bench_profile.main(["--checkpoint", str(tiny_checkpoint), "--tokens", "200", "--budget", "128",
                                   "--decode", "2", *extra]) == 0
        res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        for phase in ("prefill", "decode"):
            assert {"csa.attn", "attn.sparse_attn.csa", "csa.attn.indexer", "hca.moe"} <= set(res[phase]["regions"])
        assert bool(res["prefill"]["ops"]) != bool(extra)  # the op table comes from the profiler only
    assert model.attend is attend
