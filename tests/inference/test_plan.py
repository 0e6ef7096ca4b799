"""The memory plan: the release tensor tables from the fixture configs, per-rank splits, fit / no fit, the CLI."""

import json
from pathlib import Path

import pytest
import torch

from inference.checkpoint.dev import write_checkpoint
from inference.checkpoint.presets import preset_config
from inference.checkpoint.quant import release_format
from inference.memory_plan.sizing import GIB, PlanInputs, make_plan
from inference.memory_plan.tensors import header_bytes, tensor_table
from inference.model.config import ModelArgs
from inference.model.model import Transformer
from inference.plan import main as plan_main
from inference.plan import parse_mem

FIXTURES = Path(__file__).parent / "fixtures"
FLASH, PRO = FIXTURES / "v4_flash_config.json", FIXTURES / "v4_pro_config.json"


def test_release_tables_match_the_published_totals():
    """Flash 148.66 GiB in 69,187 tensors (46 shards); Pro 805.3 GiB = 864.7 GB in 145,116 (64 shards). The files
    hold the safetensors headers too: tensor bytes alone are 148.648 GiB."""
    for path, shards, tensors, gib in ((FLASH, 46, 69187, 148.66), (PRO, 64, 145116, 805.3)):
        table = tensor_table(ModelArgs.from_file(path))
        assert len(table) == tensors
        on_disk = sum(t.nbytes for t in table) + header_bytes(table, shards)
        assert round(on_disk / GIB, 2 if gib == 148.66 else 1) == gib
    pro = tensor_table(ModelArgs.from_file(PRO))
    assert round((sum(t.nbytes for t in pro) + header_bytes(pro, 64)) / 1e9, 1) == 864.7


def test_routed_experts_dominate_flash():
    p = make_plan(ModelArgs.from_file(FLASH), PlanInputs(gpus=1, gpu_mem_gib=1000))
    assert 137.0 < p.weights_by_kind["routed_experts"] / GIB < 137.3  # 129.0 FP4 + 8.1 scales
    assert p.weights == p.weights_total and p.tensors == 69187


@pytest.mark.parametrize("preset", ["tiny", "flash-shape"])
@pytest.mark.parametrize("quantized", [False, True])
def test_table_names_and_shapes_are_the_models(preset, quantized):
    """The table is computed, not loaded: it must name exactly the tensors the model holds, stored in quant.py's
    release formats (FP4: two codes per byte + a scale per 32; FP8: + a scale per 128 × 128)."""
    args = ModelArgs.from_dict(preset_config(preset))
    with torch.device("meta"):
        model = Transformer(args, torch.bfloat16)
    expected = {}
    for k, v in model.state_dict().items():
        fmt = release_format(k) if quantized else None
        stem = k.removesuffix(".weight")
        if fmt == "fp4":
            expected[k], expected[stem + ".scale"] = (v.shape[0], v.shape[1] // 2), (v.shape[0], v.shape[1] // 32)
        elif fmt == "fp8":
            expected[k], expected[stem + ".scale"] = tuple(v.shape), (-(-v.shape[0] // 128), -(-v.shape[1] // 128))
        else:
            expected[k] = tuple(v.shape)
    table = tensor_table(args, quantized=quantized)
    assert {t.name: t.shape for t in table} == expected
    assert len(table) == len(expected)  # no name twice


def test_header_estimate_close_to_real_files(tmp_path):
    out = write_checkpoint(tmp_path / "q", preset_config("tiny"), quantized=True)
    table = tensor_table(ModelArgs.from_dict(preset_config("tiny")))
    shards = list(out.glob("*.safetensors"))
    real = sum(8 + int.from_bytes(f.read_bytes()[:8], "little") for f in shards)  # length prefix + JSON header
    assert abs(header_bytes(table, len(shards)) - real) < 0.02 * real


def test_tp_ep_split_and_replicated_cache():
    a = ModelArgs.from_file(FLASH)
    one = make_plan(a, PlanInputs(gpus=1, gpu_mem_gib=1000))
    two = make_plan(a, PlanInputs(gpus=2, gpu_mem_gib=1000))
    # the experts halve; their router (counted with them) is replicated
    assert 0.5 < two.weights_by_kind["routed_experts"] / one.weights_by_kind["routed_experts"] < 0.501
    assert two.weights_by_kind["other"] == one.weights_by_kind["other"]  # replicated
    assert one.weights_by_kind["attention"] / 2 < two.weights_by_kind["attention"] < one.weights_by_kind["attention"]
    assert two.history_bytes_per_token == one.history_bytes_per_token == 6880  # the whole cache on every rank
    ep_only = make_plan(a, PlanInputs(gpus=2, gpu_mem_gib=1000, tp=1))
    assert ep_only.weights_by_kind["attention"] == one.weights_by_kind["attention"]


def test_dequantized_flash_is_over_half_a_tib():
    p = make_plan(ModelArgs.from_file(FLASH), PlanInputs(gpus=1, gpu_mem_gib=1000, weights="dequantized"))
    assert 520 < p.weights_total / GIB < 560  # bf16: ≈542 GiB


def test_flash_needs_two_141gb_gpus(capsys):
    assert plan_main(["--config", str(FLASH), "--gpus", "1", "--gpu-mem", "141GB"]) == 1
    out, err = capsys.readouterr()
    assert "does not fit" in err and "add GPUs" in err
    assert json.loads(out.strip().splitlines()[-1])["fits"] is False
    assert plan_main(["--config", str(FLASH), "--gpus", "2", "--gpu-mem", "141GB"]) == 0
    out, _ = capsys.readouterr()
    report = json.loads(out.strip().splitlines()[-1])
    assert report["fits"] and report["sequences_1m"] >= 1 and report["context_tokens"] >= 1 << 20
    assert "routed experts" in out and "KV pool left" in out


def test_pro_on_eight_gpus_and_errors(capsys):
    assert plan_main(["--config", str(PRO), "--gpus", "8", "--gpu-mem", "141GB", "--cache-dtype", "fp32",
                      "--max-model-len", "65536", "--chunk", "2048"]) == 0
    assert json.loads(capsys.readouterr()[0].strip().splitlines()[-1])["max_model_len"] == 65536
    with pytest.raises(SystemExit):
        plan_main(["--config", str(PRO), "--gpus", "8", "--gpu-mem", "80", "--tp", "3"])
    assert "must divide" in capsys.readouterr()[1]
    assert parse_mem("141GB") == pytest.approx(131.3165, abs=1e-3) and parse_mem("80") == 80.0


def test_measure_matches_the_plan(tmp_path, capsys):
    """What the loader keeps resident, both ways, is what the plan counts (norms are fp32 in the model, bf16 in the
    release: a few KiB)."""
    ckpt = write_checkpoint(tmp_path / "q", preset_config("tiny"), quantized=True)
    assert plan_main(["--measure", str(ckpt)]) == 0
    r = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    for mode in ("quantized", "dequantized"):
        assert abs(r[mode]["resident_bytes"] - r[mode]["planned_bytes"]) < 1e-3 * r[mode]["planned_bytes"]
    assert r["dequantized"]["resident_bytes"] > r["quantized"]["resident_bytes"]


def test_the_plan_needs_no_torch():
    """Planning a deployment (and the server's argument parsing) imports neither torch nor triton."""
    import subprocess
    import sys

    code = ("import sys, inference.plan, inference.memory_plan.sizing, inference.checkpoint.modes, inference.serve; "
            "print(sorted(m for m in ('torch', 'triton') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
