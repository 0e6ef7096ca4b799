"""inference.serve sizes its cache pools from the memory plan; an explicit --cache-gib is checked against it."""

import pytest

from inference.checkpoint.presets import preset_args
from inference.memory_plan.sizing import GIB, PlanDoesNotFit, device_memory_bytes, serve_cache_bytes
from inference.serve import main as serve_main
from inference.serve import parse_args, plan_cache_bytes

KW = dict(device="cpu", weights="dequantized", dtype="float32", max_num_seqs=4, chunk=128, max_model_len=4096)


def test_default_cpu_budget_is_at_most_2_gib_and_inside_the_plan():
    cache, plan = serve_cache_bytes(preset_args("tiny"), cache_gib=None, **KW)
    assert 0 < cache <= min(2 * GIB, plan.kv_pool)
    assert plan.gpu_mem == pytest.approx(device_memory_bytes("cpu"), rel=0.2)


def test_explicit_cache_gib_wins_when_it_fits_and_is_refused_when_not():
    cache, _ = serve_cache_bytes(preset_args("tiny"), cache_gib=0.25, **KW)
    assert cache == GIB // 4
    with pytest.raises(PlanDoesNotFit, match="--cache-gib 1e.06 is more than the .* GiB the memory plan leaves"):
        serve_cache_bytes(preset_args("tiny"), cache_gib=1e6, **KW)


def test_a_model_bigger_than_memory_is_refused():
    with pytest.raises(PlanDoesNotFit, match="does not fit"):
        serve_cache_bytes(preset_args("tiny", num_hidden_layers=4, vocab_size=129280 * 4000), cache_gib=None, **KW)


def test_serve_refuses_an_oversized_cache_before_loading(tiny_checkpoint, capsys):
    assert serve_main(["--checkpoint", str(tiny_checkpoint), "--cache-gib", "100000", "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "cannot serve" in err and "--cache-gib 100000 is more than" in err
    args = parse_args(["--checkpoint", str(tiny_checkpoint), "--device", "cpu", "--weights", "quantized"])
    assert 0 < plan_cache_bytes(args) <= 2 * GIB
