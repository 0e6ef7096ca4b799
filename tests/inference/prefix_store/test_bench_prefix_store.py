"""inference.bench_prefix_store runs end to end at toy sizes and ends with one JSON line (speed is never asserted)."""

import json

import pytest

from inference import bench_prefix_store


@pytest.mark.slow
def test_bench_prints_tables_then_one_json_line(tiny_checkpoint, capsys):
    assert bench_prefix_store.main(["--checkpoint", str(tiny_checkpoint), "--docs", "640", "--question", "8",
                                    "--crossover", "128", "--cache-mib", "16"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert any(line.split()[:3] == ["document", "cold", "TTFT"] for line in lines)
    res = json.loads(lines[-1])
    (doc,) = res["docs"]
    assert doc["restored_cached"] == doc["memory_cached"] == 640  # the whole document, with its window state
    assert doc["layout_bytes_per_token"] == 208.0  # tiny: the layout's history bytes per token
    assert doc["snapshot_bytes_per_token"] > doc["layout_bytes_per_token"]  # + the window state and the header
    (cross,) = res["crossover"]
    assert cross["tokens"] == 128 and cross["restored_cached"] == 128 and cross["cold_ttft_s"] > 0
