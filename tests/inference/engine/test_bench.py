"""inference.bench runs end to end at toy sizes and ends with one JSON line (speed is never asserted)."""

import json

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
