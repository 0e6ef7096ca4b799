"""`--weights quantized` (FP8/FP4 kept as released, GEMMs through kernels.quant_gemm's twins on CPU) computes what
`--weights dequantized` computes: the `tiny` and `small` presets written with `--quantized`, fp32 logits within 1e-4
and equal greedy tokens through prefill, a prefix-cache hit and decode (docs/quantized-weights.md)."""

import pytest
import torch

from inference.checkpoint.dev import write_checkpoint
from inference.checkpoint.loader import default_weights, load_model
from inference.checkpoint.presets import preset_config
from inference.engine import Engine, EngineConfig, SamplingParams
from inference.generate import main as generate_main
from inference.model.quant_linear import QuantExperts, QuantLinear, resident_bytes
from inference.model.runner import ModelRunner
from kernels import quant_gemm
from tests.inference.engine.engine_helpers import record_logits

ATOL = 1e-4


@pytest.fixture(scope="module")
def quantized_ckpts(tmp_path_factory):
    """tiny and small in the release formats (devcheckpoint --quantized), seed 0."""
    return {p: write_checkpoint(tmp_path_factory.mktemp(p), preset_config(p), seed=0, quantized=True)
            for p in ("tiny", "small")}


def _ids(n: int, seed: int) -> list[int]:
    return torch.randint(2, 100000, (n,), generator=torch.Generator().manual_seed(seed)).tolist()


def _run(model, requests: list[list[int]], max_tokens: int = 4):
    """Run requests one after the other through one engine; every logits row of every step, the tokens and the
    cached-token counts."""
    eng = Engine(model, EngineConfig(cache_bytes=64 << 20, max_num_batched_tokens=128, checkpoint_every_blocks=1,
                                     num_checkpoints=8))
    rows = record_logits(eng)
    tokens, cached = [], []
    for i, ids in enumerate(requests):
        eng.add_request(str(i), ids, SamplingParams(max_tokens=max_tokens, ignore_eos=True))
        got, last = [], None
        while eng.has_unfinished():
            for o in eng.step():
                got += o.new_token_ids
                last = o
        tokens.append(got)
        cached.append(last.cached_tokens)
    return rows, tokens, cached


@pytest.mark.parametrize("preset", ["tiny", "small"])
def test_quantized_equals_dequantized_through_prefill_prefix_hit_and_decode(quantized_ckpts, preset, monkeypatch):
    q = load_model(quantized_ckpts[preset], weights="quantized")
    d = load_model(quantized_ckpts[preset], weights="dequantized")
    assert q.args.reference_numerics  # a release checkpoint: FP8 activations into every quantized GEMM
    assert isinstance(q.layers[1].ffn.experts, QuantExperts) and isinstance(q.layers[1].attn.wq_b, QuantLinear)
    calls = {"linear": 0, "grouped": 0}
    for name in calls:  # the quantized path really runs the twins
        orig = getattr(quant_gemm, f"quant_{name}_torch")

        def counted(*a, _orig=orig, _name=name, **kw):
            calls[_name] += 1
            return _orig(*a, **kw)
        monkeypatch.setattr(quant_gemm, f"quant_{name}_torch", counted)
    doc = _ids(300, 1)  # two full cache blocks + 44 tokens
    requests = [doc + _ids(9, 2), doc + _ids(13, 3)]
    rq, tq, cq = _run(q, requests)
    assert calls["linear"] > 0 and calls["grouped"] > 0
    rd, td, cd = _run(d, requests)
    assert cq == cd and cq[0] == 0 and cq[1] >= 256  # the second request hits the document's blocks
    assert tq == td
    assert len(rq) == len(rd)
    for a, b in zip(rq, rd):  # prefill chunks, the hit's remaining prefill, every decode step
        assert a.dtype == torch.float32 and (a - b).abs().max().item() <= ATOL


def test_reference_numerics_off_is_equal_too_and_differs_from_on(quantized_ckpts):
    ids = torch.tensor([_ids(70, 4)])
    q = ModelRunner(load_model(quantized_ckpts["tiny"], weights="quantized", reference_numerics=False))(ids)
    d = ModelRunner(load_model(quantized_ckpts["tiny"], weights="dequantized", reference_numerics=False))(ids)
    on = ModelRunner(load_model(quantized_ckpts["tiny"], weights="quantized"))(ids)
    assert (q - d).abs().max().item() <= ATOL
    assert (q - on).abs().max().item() > 1e-3  # FP8 activations are really applied under the switch


def test_resident_bytes_are_the_checkpoints(quantized_ckpts):
    """Quantized: FP8 bytes, packed FP4 bytes and ue8m0 scale bytes as on disk; dequantized: fp32 everywhere."""
    q = load_model(quantized_ckpts["small"], weights="quantized")
    d = load_model(quantized_ckpts["small"], weights="dequantized")
    experts = q.layers[1].ffn.experts
    inter, dim = q.args.moe_intermediate_size, q.args.hidden_size
    assert experts.w1_weight.shape == (8, inter, dim // 2) and experts.w1_weight.dtype == torch.int8
    assert experts.w1_scale.shape == (8, inter, dim // 32) and experts.w1_scale.dtype == torch.uint8
    saved = sum(4 * 3 * 8 * inter * dim - 3 * 8 * (inter * dim // 2 + inter * dim // 32) for _ in q.layers)
    assert resident_bytes(d) - resident_bytes(q) > saved  # the experts alone; the FP8 linears save more


def test_plain_checkpoint_loads_either_way(tiny_checkpoint):
    ids = torch.tensor([_ids(20, 5)])
    q = load_model(tiny_checkpoint, weights="quantized")  # nothing ships quantized: nothing to keep
    assert not any(isinstance(m, (QuantLinear, QuantExperts)) for m in q.modules())
    torch.testing.assert_close(ModelRunner(q)(ids), ModelRunner(load_model(tiny_checkpoint))(ids))


def test_defaults_and_cli(quantized_ckpts, capsys):
    assert default_weights("cpu") == "dequantized" and default_weights("cuda") == "quantized"
    outs = []
    for mode in ("quantized", "dequantized"):
        assert generate_main(["--checkpoint", str(quantized_ckpts["tiny"]), "--prompt-ids", "5,6,7,8",
                              "--max-new-tokens", "3", "--greedy", "--weights", mode, "--device", "cpu"]) == 0
        outs.append(capsys.readouterr().out)
    assert outs[0] == outs[1]
    with pytest.raises(SystemExit):
        generate_main(["--checkpoint", str(quantized_ckpts["tiny"]), "--prompt-ids", "5", "--weights", "fp4"])


def test_hf_named_checkpoint_with_float_scales(tmp_path):
    """transformers' naming: FP8 weights beside float `.weight_scale_inv`, merged experts dense, no mtp.*."""
    import json
    import shutil

    from inference.checkpoint.quant import dequantize_state_dict, release_format, scale_to_float
    from inference.checkpoint.weights import CheckpointReader, hf_expert_source, hf_name, save_sharded, to_hf_state_dict
    from tests.inference.configs import v4_config

    cfg = v4_config()
    src = write_checkpoint(tmp_path / "official", cfg, seed=4, quantized=True)
    reader = CheckpointReader(src)
    state = {k: reader.get(k) for k in reader.keys() if not k.startswith("mtp.")}
    deq = dequantize_state_dict(state)
    hf, inter = {}, cfg["moe_intermediate_size"]
    for k, v in state.items():
        if hf_expert_source(k.removesuffix(".scale").removesuffix(".weight") + ".weight", inter):
            continue
        if k.endswith(".scale"):
            hf[hf_name(k.removesuffix(".scale") + ".weight").removesuffix(".weight") + ".weight_scale_inv"] = \
                scale_to_float(v)
        else:
            assert release_format(k) in (None, "fp8")
            hf[hf_name(k)] = v
    hf.update(to_hf_state_dict({k: v for k, v in deq.items() if hf_expert_source(k, inter)}, inter))
    out = tmp_path / "hf"
    save_sharded(hf, out)
    shutil.copy(src / "config.json", out / "config.json")
    assert json.loads((out / "config.json").read_text())["quantization_config"]
    q, d = load_model(out, weights="quantized"), load_model(out, weights="dequantized")
    wq_b = q.layers[1].attn.wq_b
    assert isinstance(wq_b, QuantLinear) and wq_b.scale.dtype == torch.float32
    assert not isinstance(q.layers[1].ffn.experts, QuantExperts)  # dense in HF's merged layout
    ids = torch.tensor([_ids(40, 6)]) % 512
    assert (ModelRunner(q)(ids) - ModelRunner(d)(ids)).abs().max().item() <= ATOL


def test_engine_from_checkpoint_takes_the_mode(quantized_ckpts):
    q = Engine.from_checkpoint(quantized_ckpts["tiny"], EngineConfig(cache_bytes=32 << 20, weights="quantized"))
    d = Engine.from_checkpoint(quantized_ckpts["tiny"], EngineConfig(cache_bytes=32 << 20))  # CPU: dequantized
    assert isinstance(q.model.layers[0].ffn.experts, QuantExperts)
    assert isinstance(d.model.layers[0].ffn.experts, torch.nn.ModuleList)
