"""Parity with transformers' DeepseekV4ForCausalLM: both load the same devcheckpoint files (official names).

16 index heads keep exact-zero indexer ties (which topk may break differently) out of these runs."""

import pytest
import torch
import torch.nn.functional as F
import transformers  # the pinned reference: a missing one fails, never skips

import inference.model.model as model_mod
from inference.checkpoint.loader import load_model
from inference.model.decode import generate
from inference.model.runner import ModelRunner
from kernels.layout import sequence_rows
from tests.inference.configs import v4_config

pytestmark = pytest.mark.slow

CONFIGS = {
    # sliding + CSA + HCA, hc_mult 4, hash layer then scored layers; prompt > window (8) and > 4 x topk (16)
    "swa-csa-hca-hc4": (v4_config(), 70),
    # hc_mult 1, two hash layers, no sliding-only layer first, HCA ratio 8, a different width
    "csa-hca-swa-hc1": (v4_config(hc_mult=1, compress_ratios=[4, 8, 0, 0], num_hash_layers=2, sliding_window=16,
                                  index_topk=8, hc_sinkhorn_iters=3, o_groups=1, num_attention_heads=2,
                                  hidden_size=48, n_shared_experts=1), 80),
    # HCA at the real ratio 128 (prompt crosses it), scored MoE only, hc_mult 2
    "hca128-csa-hc2": (v4_config(hc_mult=2, compress_ratios=[128, 4, 128, 0, 0], num_hash_layers=0,
                                 sliding_window=32, index_topk=16, num_experts_per_tok=3), 140),
}


def _record_topk_margins(monkeypatch) -> list[float]:
    """Wrap the indexer's top-k to record, per call, the smallest gap between the k-th and (k+1)-th visible score."""
    gaps, real = [], model_mod.indexer_topk

    def recording(q, keys, weights, scale, seq_ids, positions, ratio, topk):
        assert q.shape[0] == 1 and seq_ids.eq(0).all()  # one sequence: its rows are the keys
        positions = positions[0]
        k = sequence_rows(keys[0], keys[1][0], int(positions.max() + 1) // ratio)[None]
        scores = (F.relu(torch.einsum("bshd,bnd->bshn", q.float(), k.float())) * scale * weights[..., None]).sum(2)
        visible = torch.arange(k.shape[1])[None, None, :] < ((positions + 1) // ratio)[None, :, None]
        scores = scores.masked_fill(~visible, float("-inf"))
        rows = visible.sum(-1)[0] > topk  # queries where the indexer really drops rows
        if rows.any() and k.shape[1] > topk:
            top = scores[:, rows].topk(topk + 1, dim=-1).values
            gaps.append((top[..., topk - 1] - top[..., topk]).min().item())
        return real(q, keys, weights, scale, seq_ids, positions[None], ratio, topk)

    monkeypatch.setattr(model_mod, "indexer_topk", recording)
    return gaps


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_logits_and_greedy_tokens_match_transformers(name, checkpoint_dir, monkeypatch):
    config, prompt_len = CONFIGS[name]
    gaps = _record_topk_margins(monkeypatch)
    ckpt = checkpoint_dir(config, seed=3)
    hf = transformers.DeepseekV4ForCausalLM.from_pretrained(str(ckpt), dtype=torch.float32).eval()
    ours = load_model(ckpt, torch.float32)
    ids = torch.randint(2, config["vocab_size"], (1, prompt_len), generator=torch.Generator().manual_seed(7))

    with torch.no_grad():
        ref = hf(ids, use_cache=False).logits
    got = ModelRunner(ours)(ids)
    assert got.shape == ref.shape
    assert (got - ref).abs().max().item() <= 1e-4

    # greedy: ours decodes incrementally from its state; transformers recomputes the full sequence each step
    new, step_logits = generate(ours, ids[0].tolist(), 32, greedy=True)
    seq, ref_tokens = ids, []
    with torch.no_grad():
        for step in range(32):
            ref_logits = hf(seq, use_cache=False).logits[0, -1]
            assert (step_logits[step] - ref_logits).abs().max().item() <= 1e-4, f"step {step}"
            tok = int(ref_logits.argmax())
            ref_tokens.append(tok)
            seq = torch.cat([seq, torch.tensor([[tok]])], dim=1)
    assert new == ref_tokens
    assert len(set(new)) > 4  # random weights still give varied tokens
    assert gaps and min(gaps) > 1e-4  # the indexer selected rows, with no (near-)tie at the cut-off
