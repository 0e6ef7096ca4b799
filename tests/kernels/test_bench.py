"""kernels.bench runs end to end at a toy size and emits the JSON keys the report needs (speed is not asserted)."""

import json

import pytest
import torch

from kernels.bench import Layer, main


def test_bench_smoke(capsys):
    out = main(["--lengths", "2048", "--prefill", "8", "--dense-sample", "4"])
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert json.loads(last) == out
    for key in ("dense_over_csa_2k", "dense_over_hca_2k", "csa_efficiency_2k", "dense_over_csa_decode_2k"):
        assert out[key] > 0, key
    assert out["csa_growth_32k_128k"] is None


def test_bench_bfloat16_and_plot(capsys, tmp_path):
    """--dtype bfloat16 times the same layer in bf16; --plot draws it (matplotlib, the bench extra)."""
    pytest.importorskip("matplotlib")
    png = tmp_path / "kernels.png"
    out = main(["--lengths", "2048,4096", "--prefill", "8", "--dense-sample", "4", "--dtype", "bfloat16",
                "--plot", str(png)])
    assert out["dtype"] == "bfloat16" and out["csa_efficiency_2k"] > 0
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_dense_baseline_is_causal_mqa():
    """The dense comparator computes real causal attention (heads folded into queries, bottom-right mask)."""
    lay = Layer(1024, 4)
    idx = torch.tensor([0, 2, 3])
    got = lay.dense(idx, chunk=2).reshape(3, 64, 512)
    for n, i in enumerate(idx.tolist()):
        p = int(lay.pos[i])
        k = lay.kv[:p + 1]
        expect = torch.softmax(lay.q[i] @ k.T * lay.scale, -1) @ k
        torch.testing.assert_close(got[n], expect, rtol=1e-4, atol=1e-4)
