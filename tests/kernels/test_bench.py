"""kernels.bench runs end to end at a toy size and emits the JSON keys the report needs (speed is not asserted)."""

import json

from kernels.bench import main


def test_bench_smoke(capsys):
    out = main(["--lengths", "2048", "--prefill", "8", "--dense-sample", "4"])
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert json.loads(last) == out
    for key in ("dense_over_csa_2k", "dense_over_hca_2k", "csa_efficiency_2k", "dense_over_csa_decode_2k"):
        assert out[key] > 0, key
    assert out["csa_growth_32k_128k"] is None
