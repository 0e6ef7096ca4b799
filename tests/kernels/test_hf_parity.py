"""Parity with HF transformers' DeepSeek-V4 modules (random weights, YaRN RoPE): compressors, indexer, attention."""

import pytest
import torch
from transformers import DeepseekV4Config  # pinned in the `reference` extra: never skipped
from transformers.models.deepseek_v4 import modeling_deepseek_v4 as hf

from kernels.compressor import compressor
from kernels.indexer import indexer_topk, naive_indexer_scores
from kernels.layout import pool_from_rows
from kernels.rope_norm import inverse_rope, rmsnorm_rope, rope
from kernels.sparse_attn import sparse_attn


def _config() -> DeepseekV4Config:
    return DeepseekV4Config(
        vocab_size=1024, hidden_size=128, moe_intermediate_size=64, num_hidden_layers=4, num_attention_heads=4,
        head_dim=64, q_lora_rank=64, num_experts_per_tok=2, n_routed_experts=8, n_shared_experts=1,
        layer_types=["sliding_attention", "compressed_sparse_attention", "heavily_compressed_attention",
                     "compressed_sparse_attention"],
        mlp_layer_types=["hash_moe", "moe", "moe", "moe"],
        compress_rates={"compressed_sparse_attention": 4, "heavily_compressed_attention": 16},
        sliding_window=32, o_groups=2, o_lora_rank=32, index_n_heads=4, index_head_dim=32, index_topk=16,
        hc_mult=2, hc_sinkhorn_iters=5, max_position_embeddings=8192, partial_rotary_factor=16 / 64,
        pad_token_id=0, bos_token_id=0, eos_token_id=1)


@pytest.mark.parametrize("cls,ratio,overlap", [("DeepseekV4HCACompressor", 16, False),
                                               ("DeepseekV4CSACompressor", 4, True)], ids=["hca-r16", "csa-r4"])
def test_matches_hf_module(cls, ratio, overlap):
    torch.manual_seed(0)
    cfg = _config()
    m = getattr(hf, cls)(cfg).float()
    for name, p in m.named_parameters():
        if "norm" in name:
            torch.nn.init.uniform_(p, 0.5, 1.5)
        else:
            torch.nn.init.normal_(p, std=0.2)
    t = 41
    x = torch.randn(1, t, cfg.hidden_size)
    with torch.no_grad():
        expect = m(x, torch.randn(1, t, cfg.q_lora_rank), torch.arange(t)[None], None, 1)[0][0, 0]   # [W, D]
        cos, sin = m.rotary_emb(x, position_ids=torch.arange(t)[None], layer_type="compress")
        rows, _, wins = compressor(m.kv_proj(x)[0].contiguous(), m.gate_proj(x)[0].contiguous(),
                                   m.position_bias.float(), m.kv_norm.weight, cos[0], sin[0],
                                   torch.tensor([0, t]), torch.tensor([0]), torch.tensor([0]),
                                   ratio=ratio, overlap=overlap, rope_dim=2 * cos.shape[-1],
                                   eps=cfg.rms_norm_eps)
    assert wins.tolist() == list(range(t // ratio))
    torch.testing.assert_close(rows, expect, rtol=1e-5, atol=1e-5)


def test_indexer_pipeline_matches_hf_indexer():
    """Indexer keys (our compressor at index_head_dim), q RoPE and top-k reproduce HF's DeepseekV4Indexer picks."""
    torch.manual_seed(1)
    cfg = _config()
    m = hf.DeepseekV4Indexer(cfg).float()
    for name, p in m.named_parameters():
        torch.nn.init.uniform_(p, 0.5, 1.5) if "norm" in name else torch.nn.init.normal_(p, std=0.2)
    m.index_topk = 3
    t, hi, di = 45, cfg.index_n_heads, cfg.index_head_dim
    x, qr = torch.randn(1, t, cfg.hidden_size), torch.randn(1, t, cfg.q_lora_rank)
    pos = torch.arange(t, dtype=torch.int32)
    with torch.no_grad():
        expect = m(x, qr, pos.long()[None], None, 1)[0]                                          # [T, 3]
        cos, sin = m.rotary_emb(x, position_ids=pos.long()[None], layer_type="compress")
        cos, sin = cos[0], sin[0]
        keys = compressor(m.kv_proj(x)[0].contiguous(), m.gate_proj(x)[0].contiguous(), m.position_bias.float(),
                          m.kv_norm.weight, cos, sin, torch.tensor([0, t]), torch.tensor([0]), torch.tensor([0]),
                          ratio=4, overlap=True, rope_dim=2 * cos.shape[-1], eps=cfg.rms_norm_eps)[0]
        q = rope(m.q_b_proj(qr)[0].view(t, hi, di), cos, sin, pos, 2 * cos.shape[-1])
        w = m.scorer.weights_proj(x)[0] * (hi ** -0.5 * di ** -0.5)
        kp, kt = pool_from_rows(keys[None], 32)
        seq = torch.zeros(t, dtype=torch.int32)
        got = indexer_topk(q, w, seq, pos, kp, kt, 4, 3)
        scores = naive_indexer_scores(q, w, seq, pos, kp, kt, 4)
    for i in range(t):
        mine = sorted(x for x in got[i].tolist() if x >= 0)
        theirs = sorted(x for x in expect[i].tolist() if x >= 0)
        # tie-aware: same number of picks and the same multiset of scores
        assert len(mine) == len(theirs), i
        torch.testing.assert_close(scores[i, mine].sort().values, scores[i, theirs].sort().values, rtol=1e-5,
                                   atol=1e-6)


@pytest.mark.parametrize("layer", [1, 2, 0], ids=["csa", "hca", "swa"])
def test_attention_layer_matches_hf(layer):
    """Whole attention layer: HF projections around our rmsnorm_rope → compressor → indexer → sparse_attn →
    inverse_rope reproduce DeepseekV4Attention (eager, sliding-window mask) on a 41-token prompt."""
    torch.manual_seed(2)
    cfg = _config()
    cfg._attn_implementation = "eager"
    m = hf.DeepseekV4Attention(cfg, layer).float().eval()
    for name, p in m.named_parameters():
        torch.nn.init.uniform_(p, 0.5, 1.5) if "norm" in name else torch.nn.init.normal_(p, std=0.2)
    t, win, h, d = 41, cfg.sliding_window, cfg.num_attention_heads, cfg.head_dim
    x = torch.randn(1, t, cfg.hidden_size)
    pos = torch.arange(t, dtype=torch.int32)
    rot = hf.DeepseekV4RotaryEmbedding(cfg)
    pe = {k: rot(x, position_ids=pos.long()[None], layer_type=k) for k in ("main", "compress")}
    i, j = torch.arange(t)[:, None], torch.arange(t)[None, :]
    mask = torch.where((j <= i) & (j > i - win), 0.0, float("-inf"))[None, None]
    with torch.no_grad():
        expect = m(x, pe, pos.long()[None], mask)[0][0]
        cos, sin = (c[0] for c in pe[m.rope_layer_type])
        rd = 2 * cos.shape[-1]
        qr = m.q_a_norm(m.q_a_proj(x))[0]
        q = rmsnorm_rope(m.q_b_proj(qr).view(t, h, d), None, cos, sin, pos, rd, cfg.rms_norm_eps)
        kv = rmsnorm_rope(m.kv_proj(x)[0], m.kv_norm.weight, cos, sin, pos, rd, cfg.rms_norm_eps)
        wp, wt = pool_from_rows(kv[None], 128)
        seq = torch.zeros(t, dtype=torch.int32)
        kw = {}
        if m.compressor is not None:
            c = m.compressor
            ratio = c.compress_rate
            rows = compressor(c.kv_proj(x)[0].contiguous(), c.gate_proj(x)[0].contiguous(), c.position_bias.float(),
                              c.kv_norm.weight, cos, sin, torch.tensor([0, t]), torch.tensor([0]),
                              torch.tensor([0]), ratio=ratio, overlap=ratio == 4, rope_dim=rd,
                              eps=cfg.rms_norm_eps)[0]
            cp, ct = pool_from_rows(rows[None], 128 // ratio)
            kw = dict(cmp_pool=cp, cmp_table=ct, ratio=ratio)
            if ratio == 4:   # index_topk (16) >= visible rows (10): every visible row, no tie ambiguity
                kw["topk_idxs"] = torch.stack([torch.where(torch.arange(16) < (p + 1) // 4, torch.arange(16), -1)
                                               for p in range(t)]).to(torch.int32)
        o = sparse_attn(q, seq, pos, wp, wt, m.sinks, m.scaling, win, **kw)
        o = inverse_rope(o, cos, sin, pos, rd)
        got = m.o_b_proj(m.o_a_proj(o.reshape(1, t, cfg.o_groups, -1)).flatten(2))[0]
    torch.testing.assert_close(got, expect, rtol=1e-4, atol=1e-4)
