"""A model with its FP8/FP4 weights kept quantized runs every quantized GEMM through Triton (interpreter on CPU,
compiled on CUDA) and gives the logits of the twin path."""

import torch

import kernels.quant_gemm as qg
from inference.checkpoint.dev import write_checkpoint
from inference.checkpoint.loader import load_model
from inference.model.runner import ModelRunner
from tests.inference.configs import v4_config


def test_quantized_model_on_the_triton_path_matches_the_twins(tdev, tmp_path, monkeypatch):
    ckpt = write_checkpoint(tmp_path / "q", v4_config(), seed=2, quantized=True)
    ids = torch.randint(2, 512, (1, 24), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        twin = ModelRunner(load_model(ckpt, weights="quantized"))(ids)
        calls = {"linear": 0, "grouped": 0}
        for name in calls:
            orig = getattr(qg, f"quant_{name}_triton")

            def counted(*a, _orig=orig, _name=name, **kw):
                calls[_name] += 1
                return _orig(*a, **kw)
            monkeypatch.setattr(qg, f"quant_{name}_triton", counted)
        if tdev == "cpu":  # only the quantized GEMMs through the interpreter: the attention kernels have own tests
            monkeypatch.setattr(qg, "use_triton", lambda x: True)
        out = ModelRunner(load_model(ckpt, weights="quantized", device=tdev))(ids.to(tdev)).cpu()
    assert calls["grouped"] == 3 * 4  # w1, w3, w2 of the routed experts of 4 layers, one launch each
    assert calls["linear"] >= 4 * 6
    torch.testing.assert_close(out, twin, rtol=1e-4, atol=1e-4)
