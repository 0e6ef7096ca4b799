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
