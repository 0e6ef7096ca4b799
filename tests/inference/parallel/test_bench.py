"""`python -m inference.parallel.bench` runs and prints its table and one JSON line (numbers are not checked)."""

import json

import pytest

from inference.parallel.bench import main

pytestmark = pytest.mark.slow


def test_bench_prints_a_table_then_json(tiny_checkpoint, capsys):
    assert main(["--checkpoint", str(tiny_checkpoint), "--requests", "2", "--prompt-tokens", "64",
                 "--max-tokens", "3"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert "prefill tok/s" in out[0] and out[2].startswith("tp2 ep2")
    row = json.loads(out[-1])
    assert row["one_process"]["decode_tok_s"] > 0 and row["parallel"]["decode_tok_s"] > 0
