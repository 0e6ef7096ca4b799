"""A decode step of many paged sequences does each layer's cache bookkeeping for all of them at once
(Packing._decode_rows: window rows, open and closing compression windows, compressed rows, tables); every final hidden
state and token equals, bit for bit, what the per-sequence path gives (Packing.batched_decode off)."""

import pytest
import torch

from inference.checkpoint.loader import load_model
from inference.engine import SamplingParams
from inference.model.runner import Packing
from tests.inference.engine.conftest import TIE_FREE
from tests.inference.engine.engine_helpers import make_engine, random_ids

DECODE_ROWS = Packing._decode_rows


def _run(model, batched: bool, monkeypatch) -> tuple[list[torch.Tensor], dict, int]:
    """Eight requests decoding together (windows of ratio 4 and 16 closing at different steps), then two more taking
    the slots of finished ones while the others decode: one repeats the start of an earlier prompt (a prefix hit,
    rows below it dropped), both prefill beside decode tokens. (final hidden states of every call, tokens, number of
    layer calls on the batched path)."""
    monkeypatch.setattr(Packing, "batched_decode", batched)
    eng = make_engine(model, max_num_seqs=8, max_num_batched_tokens=256)
    hidden, fast, logits = [], [], type(model).logits
    monkeypatch.setattr(model, "logits", lambda x: (hidden.append(x.clone()), logits(model, x))[1])
    monkeypatch.setattr(Packing, "_decode_rows", lambda *a: (fast.append(1), DECODE_ROWS(*a))[1])
    prompts = {f"r{i}": random_ids(130 + 7 * i, 40 + i) for i in range(8)}
    prompts["hit"] = prompts["r2"][:270] + random_ids(30, 60)
    prompts["late"] = random_ids(90, 61)
    budget = {rid: 12 if rid in ("r0", "r1") else 45 for rid in prompts}
    for rid in prompts:
        eng.add_request(rid, prompts[rid], SamplingParams(max_tokens=budget[rid], ignore_eos=True))
    tokens = {rid: [] for rid in prompts}
    while eng.has_unfinished():
        for out in eng.step():
            tokens[out.request_id] += out.new_token_ids
    assert eng.stats().prefix_hit_tokens > 0 and all(len(tokens[rid]) == budget[rid] for rid in prompts)
    return hidden, tokens, len(fast)


@pytest.mark.parametrize("reference_numerics", [False, True])
def test_batched_decode_bookkeeping_is_bit_identical_to_the_per_sequence_path(checkpoint_dir, monkeypatch,
                                                                               reference_numerics):
    model = load_model(checkpoint_dir(TIE_FREE), reference_numerics=reference_numerics)
    per_seq, per_seq_tokens, n_fast = _run(model, False, monkeypatch)
    assert n_fast == 0
    batched, batched_tokens, n_fast = _run(model, True, monkeypatch)
    assert n_fast > 100  # most steps decoded on the batched path
    assert batched_tokens == per_seq_tokens
    assert len(batched) == len(per_seq) and all(torch.equal(a, b) for a, b in zip(batched, per_seq))
