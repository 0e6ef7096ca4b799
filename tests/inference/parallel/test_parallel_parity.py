"""Two gloo ranks (torch.multiprocessing) compute what one process computes (docs/parallel.md): the `tiny` and
`small` presets, plain and in the release's quantized formats, fp32 logits within 1e-4 and equal greedy tokens
through prefill, a prefix-cache hit and the decode of several concurrent requests."""

import pytest
import torch

from inference.checkpoint.dev import write_checkpoint
from inference.checkpoint.loader import load_model
from inference.checkpoint.presets import preset_config
from inference.engine import Engine, EngineConfig, SamplingParams
from inference.model.quant_linear import resident_bytes
from inference.parallel.launch import LoadSpec
from inference.parallel.serving import start_engine
from inference.parallel.spec import ParallelSpec
from tests.inference.engine.engine_helpers import record_logits

ATOL = 1e-4
CONFIG = EngineConfig(cache_bytes=64 << 20, max_num_batched_tokens=128, checkpoint_every_blocks=1,
                      num_checkpoints=8)
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory):
    return {(p, q): write_checkpoint(tmp_path_factory.mktemp(f"{p}-{q}"), preset_config(p), seed=0, quantized=q)
            for p in ("tiny", "small") for q in (False, True)}


def _ids(n: int, seed: int) -> list[int]:
    return torch.randint(2, 100000, (n,), generator=torch.Generator().manual_seed(seed)).tolist()


def _scenario(eng: Engine):
    """A document prefilled and decoded alone, then three requests on it at once (prefix hits, then decoded
    together): every logits row of every step, the tokens and the cached-token counts."""
    rows = record_logits(eng)
    doc = _ids(300, 1)  # two full cache blocks + 44 tokens
    tokens, cached = {}, {}
    for batch in ([("a", doc + _ids(9, 2))], [(k, doc + _ids(5 + i, 3 + i)) for i, k in enumerate("bcd")]):
        for rid, ids in batch:
            eng.add_request(rid, ids, SamplingParams(max_tokens=5, ignore_eos=True))
        while eng.has_unfinished():
            for o in eng.step():
                tokens.setdefault(o.request_id, []).extend(o.new_token_ids)
                cached[o.request_id] = o.cached_tokens
    return rows, tokens, cached


LAYOUTS = [(p, 2, 2, q) for p in ("tiny", "small") for q in (False, True)] + [("tiny", 2, 1, False),
                                                                             ("tiny", 1, 2, False)]


@pytest.mark.parametrize("preset,tp,ep,quantized", LAYOUTS,
                         ids=[f"{p}-tp{t}-ep{e}-{'quantized' if q else 'plain'}" for p, t, e, q in LAYOUTS])
def test_two_ranks_equal_one_process(ckpts, preset, tp, ep, quantized):
    path = ckpts[preset, quantized]
    weights = "quantized" if quantized else "dequantized"
    full = load_model(path, weights=weights)
    ref_rows, ref_tokens, ref_cached = _scenario(Engine(full, CONFIG))
    pe = start_engine(ParallelSpec(tp=tp, ep=ep, timeout_s=120), LoadSpec(str(path), weights=weights), CONFIG)
    try:
        split = pe.engine.model.parallel_split
        # rank 0 read and holds its half of the routed experts only (inference.parallel.load), and with tp 2 its
        # half of the vocabulary too
        assert len(pe.engine.model.layers[0].ffn.experts) == full.args.n_routed_experts // ep
        if tp == ep == 2:
            assert resident_bytes(pe.engine.model) < 0.8 * resident_bytes(full)
        rows, tokens, cached = _scenario(pe.engine)
    finally:
        pe.close()
    if tp == 2 and (preset == "small" or not quantized):  # heads, shared expert and vocabulary split where the
        assert split["attention"] == split["shared"] == split["blocks"] and split["vocab"], split  # blocks allow
    assert cached == ref_cached and ref_cached["a"] == 0 and min(ref_cached[k] for k in "bcd") >= 256
    assert tokens == ref_tokens
    assert len(rows) == len(ref_rows) and max(len(r) for r in rows) == 3  # three requests decoded in one step
    for a, b in zip(rows, ref_rows):
        assert a.dtype == torch.float32 and (a - b).abs().max().item() <= ATOL


def test_preemption_and_recompute_stay_in_step(ckpts):
    """A cache of 8 history blocks for four 250-token prompts that decode past 256: sequences are preempted and
    come back (new states on the same slots, recomputed); the ranks stay in step and the tokens stay exact."""
    window, block = 4 * 128 * 64 * 4, 128 * (2 * (64 + 32) // 4 * 4 + 64 * 4 // 16)  # fp32 rows of `tiny`
    config = EngineConfig(cache_bytes=4 * window + 8 * block, max_num_seqs=4, num_checkpoints=0,
                          max_num_batched_tokens=512)
    path = ckpts["tiny", False]
    prompts = {f"r{i}": _ids(250, 10 + i) for i in range(4)}

    def run(eng: Engine):
        assert eng.blocks.num_blocks == 8
        for rid, ids in prompts.items():
            eng.add_request(rid, ids, SamplingParams(max_tokens=10, ignore_eos=True))
        got = {}
        while eng.has_unfinished():
            for o in eng.step():
                got.setdefault(o.request_id, []).extend(o.new_token_ids)
        assert eng.stats().num_preemptions > 0
        return got

    want = run(Engine(load_model(path), config))
    pe = start_engine(ParallelSpec(tp=2, ep=2, timeout_s=120), LoadSpec(str(path)), config)
    try:
        assert run(pe.engine) == want
    finally:
        pe.close()
