"""The model's attention goes through kernels/: attention_ops against the kernels' naive twins and an independent
REF-layout formulation, and a tiny forward whose attention and mHC run the Triton kernels (interpreter or CUDA).

Counting and swapping patch the kernels' modules (kernels.sparse_attn, kernels.indexer, kernels.compressor,
kernels.mhc): their dispatchers, which attention_ops and the model call, look those functions up at call time."""

import importlib

import pytest
import torch
import torch.nn.functional as F

import inference.model.attention_ops as ops
import kernels
from inference.checkpoint.dev import init_random_
from inference.model.config import ModelArgs
from inference.model.model import Transformer
from inference.model.runner import ModelRunner
from kernels.dispatch import force_triton
from tests.kernels.ref_layout import naive_sparse_attn_gather

# the modules themselves, where the dispatchers look their Triton / torch paths up
K_ATTN = importlib.import_module("kernels.sparse_attn")
K_INDEXER = importlib.import_module("kernels.indexer")
K_COMP = importlib.import_module("kernels.compressor")
K_MHC = importlib.import_module("kernels.mhc")

# sliding + CSA(4) + HCA(8); the window (8) and top-k (3) are small so the 40-token prompt really selects rows
TINY = {"vocab_size": 64, "hidden_size": 32, "num_hidden_layers": 3, "num_nextn_predict_layers": 0,
        "num_attention_heads": 2, "head_dim": 32, "qk_rope_head_dim": 8, "q_lora_rank": 16, "o_groups": 1,
        "o_lora_rank": 16, "sliding_window": 8, "compress_ratios": [0, 4, 8], "index_n_heads": 4,
        "index_head_dim": 16, "index_topk": 3, "hc_mult": 2, "hc_sinkhorn_iters": 3, "n_routed_experts": 4,
        "num_experts_per_tok": 2, "moe_intermediate_size": 16, "num_hash_layers": 0, "n_shared_experts": 1,
        "max_position_embeddings": 4096, "torch_dtype": "float32", "bos_token_id": 0, "eos_token_id": 1}


def tiny_model(device: str = "cpu") -> Transformer:
    model = Transformer(ModelArgs.from_dict(TINY), torch.float32)
    init_random_(model, seed=5)
    return model.to(device).eval()


def tiny_runner(device: str = "cpu") -> ModelRunner:
    return ModelRunner(tiny_model(device))


def _ids(n: int) -> torch.Tensor:
    return torch.randint(2, TINY["vocab_size"], (1, n), generator=torch.Generator().manual_seed(11))


def _ref_idxs(positions: torch.Tensor, window: int, base: int, ratio: int, n_comp: int, n_win: int,
              sel: torch.Tensor | None, b: int) -> torch.Tensor:
    """REF layout index lists over cat(window rows from `base`, compressed rows): [b, s, window + k]."""
    p = positions[:, None] - window + 1 + torch.arange(window)[None, :]
    idx = [torch.where(p >= 0, p - base, -1)[None].expand(b, -1, -1)]
    if ratio and sel is None:
        w = torch.arange(n_comp)[None, :]
        idx.append(torch.where(w < ((positions + 1) // ratio)[:, None], w + n_win, -1)[None].expand(b, -1, -1))
    elif sel is not None:
        idx.append(torch.where(sel >= 0, sel + n_win, -1))
    return torch.cat(idx, -1)


@pytest.mark.parametrize("ratio,csa", [(0, False), (128, False), (4, False), (4, True)])
def test_attend_equals_ref_layout_twin(ratio, csa):
    """Pools built from contiguous rows (window starting mid-block, batch 2) read the same rows as the REF list."""
    g = torch.Generator().manual_seed(ratio + csa)
    b, h, d, window, start, s = 2, 3, 32, 128, 300, 70
    base = start - (window - 1)
    win = torch.randn(b, window - 1 + s, d, generator=g)
    n_comp = (start + s) // ratio if ratio else 0
    comp = torch.randn(b, n_comp, d, generator=g) if ratio else None
    q, sink = torch.randn(b, s, h, d, generator=g), torch.randn(h, generator=g)
    positions = torch.arange(start, start + s)
    sel = None
    if csa:  # random picks among the visible rows, some -1
        vis = ((positions + 1) // ratio)[None, :, None]
        sel = (torch.rand(b, s, 5, generator=g) * vis).long()
        sel = torch.where(torch.rand(b, s, 5, generator=g) < 0.2, -1, sel).to(torch.int32)
    comps = [ops.row_pool(comp, 128 // ratio)] if ratio else None
    seq, pos = torch.arange(b, dtype=torch.int32)[:, None].expand(b, s), positions[None].expand(b, s)
    got = ops.attend(q, seq, pos, ops.kv_pools([(win, base)], comps, ratio), sink, 0.2, window, sel)
    kv_all = torch.cat([win] + ([comp] if ratio else []), 1)
    idx = _ref_idxs(positions, window, base, ratio, n_comp, win.shape[1], sel, b)
    want = naive_sparse_attn_gather(q, kv_all, sink, idx, 0.2)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_indexer_topk_picks_the_largest_visible_scores():
    g = torch.Generator().manual_seed(3)
    b, s, hi, di, n, ratio, topk, start = 2, 12, 4, 16, 10, 4, 3, 28
    q, k = torch.randn(b, s, hi, di, generator=g), torch.randn(b, n, di, generator=g)
    w = torch.randn(b, s, hi, generator=g)
    positions = torch.arange(start, start + s)
    seq = torch.arange(b, dtype=torch.int32)[:, None]
    keys = ops.row_pool(k, 128 // ratio)
    got = ops.indexer_topk(q, keys, w, 0.5, seq.expand(b, s), positions[None].expand(b, s), ratio, topk)
    assert got.shape == (b, s, topk) and got.dtype == torch.int32
    scores = (F.relu(torch.einsum("bshd,bnd->bshn", q, k)) * w[..., None] * 0.5).sum(2)
    visible = torch.arange(n)[None, None, :] < ((positions + 1) // ratio)[None, :, None]
    want = scores.masked_fill(~visible, float("-inf")).topk(topk, -1).indices
    assert torch.equal(got.long().sort(-1).values, want.sort(-1).values)
    # a query that sees fewer rows than topk gets them all, then -1
    few = ops.indexer_topk(q[:, :1], keys, w[:, :1], 0.5, seq, torch.tensor([[5]]).expand(b, 1), ratio, topk)
    assert few[..., 0].eq(0).all() and few[..., 1:].eq(-1).all()


@pytest.mark.parametrize("shared", [False, True], ids=["copied", "one-pool"])
def test_pools_of_several_sequences_merge_so_each_query_reads_only_its_own(shared):
    """kv_pools/merge_pools over spans of different lengths and positions (rows copied per span, or all spans on one
    shared paged pool): one attend / indexer call over every query equals a call per sequence."""
    g = torch.Generator().manual_seed(9)
    h, d, window, ratio, rpb = 2, 16, 128, 4, 32
    spans = [(300, 5), (7, 1), (1000, 40)]  # (first position, queries): decode beside prefill chunks
    big = torch.randn(64, rpb, d, generator=g)  # the shared pool: sequence i owns blocks 20*i …
    wins, comps, qs, alone = [], [], [], []
    for i, (start, n) in enumerate(spans):
        base = max(0, start - window + 1)
        win = torch.randn(1, start + n - base, d, generator=g)
        nblk = -(-(start + n) // 128)
        comp = (big, torch.arange(20 * i, 20 * i + nblk, dtype=torch.int32)[None]) if shared else ops.row_pool(
            torch.randn(1, (start + n) // ratio, d, generator=g), rpb)
        q = torch.randn(1, n, h, d, generator=g)
        pos = torch.arange(start, start + n)[None]
        zero = torch.zeros(1, n, dtype=torch.int32)
        one = ops.kv_pools([(win, base)], [comp], ratio)
        alone.append((ops.attend(q, zero, pos, one, torch.zeros(h), 0.25, window),
                      ops.indexer_topk(q, comp, torch.ones(1, n, h), 0.25, zero, pos, ratio, 3)))
        wins.append((win, base))
        comps.append(comp)
        qs.append((q, torch.full((1, n), i, dtype=torch.int32), pos))
    pools = ops.kv_pools(wins, comps, ratio)
    if shared:
        assert pools.cmp_pool is big  # read in place, never copied
    q, seq, pos = (torch.cat(t, 1) for t in zip(*qs))
    got = ops.attend(q, seq, pos, pools, torch.zeros(h), 0.25, window)
    picks = ops.indexer_topk(q, ops.merge_pools(comps, q.dtype), torch.ones(1, q.shape[1], h), 0.25, seq, pos,
                             ratio, 3)
    torch.testing.assert_close(got, torch.cat([a for a, _ in alone], 1), rtol=1e-6, atol=1e-6)
    assert torch.equal(picks, torch.cat([p for _, p in alone], 1))


def test_model_forward_runs_the_kernels_torch_paths_and_equals_the_naive_twins(monkeypatch):
    model, ids = tiny_runner(), _ids(40)
    calls = {"attn": 0, "indexer": 0}
    fast_attn, fast_idx = K_ATTN.sparse_attn_torch, K_INDEXER.indexer_topk_torch

    def count(name, fn):
        def wrapped(*a, **kw):
            calls[name] += 1
            return fn(*a, **kw)
        return wrapped

    monkeypatch.setattr(K_ATTN, "sparse_attn_torch", count("attn", fast_attn))
    monkeypatch.setattr(K_INDEXER, "indexer_topk_torch", count("indexer", fast_idx))
    with torch.no_grad():
        fast = model(ids)
    assert calls["attn"] >= 3 and calls["indexer"] >= 1  # every layer attends through kernels; CSA indexes
    monkeypatch.setattr(K_ATTN, "sparse_attn_torch", kernels.naive_sparse_attn)
    monkeypatch.setattr(K_INDEXER, "indexer_topk_torch", kernels.naive_indexer_topk)
    with torch.no_grad():
        naive = model(ids)
    torch.testing.assert_close(fast, naive, rtol=1e-5, atol=1e-5)


def _count_triton(monkeypatch) -> dict[str, int]:
    """Count calls of the Triton launches of attention, indexer, compressor and mHC (pre, post)."""
    calls = {}
    for mod, name in ((K_ATTN, "sparse_attn_triton"), (K_INDEXER, "indexer_topk_triton"),
                      (K_COMP, "compressor_triton"), (K_MHC, "hc_pre_triton"), (K_MHC, "hc_post_triton")):
        calls[name], real = 0, getattr(mod, name)

        def wrapped(*a, _name=name, _real=real, **kw):
            calls[_name] += 1
            return _real(*a, **kw)
        monkeypatch.setattr(mod, name, wrapped)
    return calls


def test_model_forward_on_the_triton_path_matches_the_cpu_path(tdev, monkeypatch):
    ids = _ids(40)
    with torch.no_grad():
        cpu = tiny_runner()(ids)
        calls = _count_triton(monkeypatch)
        with force_triton():  # CPU tensors (interpreter) take the Triton path too; CUDA tensors always do
            out = tiny_runner(tdev)(ids.to(tdev)).cpu()
    assert calls["sparse_attn_triton"] >= 3 and calls["compressor_triton"] >= 3  # CSA + its indexer + HCA compressors
    assert calls["indexer_topk_triton"] >= 1
    assert calls["hc_pre_triton"] >= 6 and calls["hc_post_triton"] >= 6  # mHC: attn + ffn sites of 3 layers
    torch.testing.assert_close(out, cpu, rtol=1e-4, atol=1e-4)


def test_packed_forward_on_the_triton_path_matches_the_cpu_path(tdev, monkeypatch):
    """The engine's call shape (pieces of several sequences at their own positions) through the Triton kernels."""
    ids = _ids(60)[0].tolist()

    def run(model):
        a, b = model.new_state(), model.new_state()
        first = model.forward_packed([(a, ids[:37]), (b, ids[:9])])
        return torch.cat([first, model.forward_packed([(a, ids[37:38]), (b, ids[9:30])])]).cpu()

    with torch.no_grad():
        cpu = run(tiny_runner())
        calls = _count_triton(monkeypatch)
        with force_triton():
            out = run(tiny_runner(tdev))
    assert calls["sparse_attn_triton"] >= 6 and calls["hc_pre_triton"] >= 12
    torch.testing.assert_close(out, cpu, rtol=1e-4, atol=1e-4)


def _ref_compressor_rows(comp, x: torch.Tensor) -> torch.Tensor:
    """REF Compressor at start_pos=0, written out here: window softmax pooling (CSA: A-half of w−1 | B-half of w),
    weighted RMSNorm, interleaved RoPE at w·m — independent of kernels/."""
    m, d = comp.ratio, comp.head_dim
    n = x.shape[1] // m
    kv = F.linear(x.float(), comp.wkv.weight.float())[:, : n * m].unflatten(1, (n, m))  # [b,n,m,coff*d]
    z = (F.linear(x.float(), comp.wgate.weight.float())[:, : n * m].unflatten(1, (n, m)) + comp.ape)
    if comp.overlap:
        pad = lambda t, v: torch.cat([torch.full_like(t[:, :1, :, :d], v), t[:, :-1, :, :d]], 1)
        kv, z = torch.cat([pad(kv, 0.0), kv[..., d:]], 2), torch.cat([pad(z, float("-inf")), z[..., d:]], 2)
    rows = (kv * z.softmax(2)).sum(2)  # [b,n,d]
    rows = rows * torch.rsqrt(rows.square().mean(-1, keepdim=True) + comp.norm.eps) * comp.norm.weight
    cos, sin = comp.rotary.cos_sin(torch.arange(n) * m)
    rd = comp.rope_dim
    e, o = rows[..., -rd::2], rows[..., -rd + 1::2]
    rot = torch.stack([e * cos - o * sin, e * sin + o * cos], -1).flatten(-2)
    return torch.cat([rows[..., :-rd], rot], -1)


def _state(comp):
    from inference.model.state import CompressorState

    return CompressorState.new(2, comp.ratio, comp.head_dim, comp.overlap, "cpu")


@pytest.mark.parametrize("layer", [1, 2], ids=["csa", "hca"])
def test_model_compressor_runs_the_fused_kernel_and_decodes_exactly(layer, monkeypatch):
    """Compressor rows come from kernels.compressor (norm + RoPE fused, RoPE slice with an offset), equal an
    independent REF formulation, and prefill-then-decode (open state + carry) closes exactly the same rows."""
    model = tiny_model()
    attn = model.layers[layer].attn
    comps = [attn.compressor] + ([attn.indexer.compressor] if attn.indexer is not None else [])
    calls = []
    real = K_COMP.compressor_torch
    monkeypatch.setattr(K_COMP, "compressor_torch", lambda *a, **kw: calls.append(kw["rope_offset"]) or real(*a, **kw))
    x = torch.randn(2, 37, TINY["hidden_size"], generator=torch.Generator().manual_seed(4))
    for comp in comps:
        with torch.no_grad():
            full = comp(x, 0, _state(comp))
            assert full.shape == (2, 37 // comp.ratio, comp.head_dim)
            torch.testing.assert_close(full, _ref_compressor_rows(comp, x), rtol=1e-5, atol=1e-5)
            st, parts, p = _state(comp), [], 0
            for n in (11, 1, 6, 1, 1, 17):  # chunked prefill then decode steps, mostly mid-window
                parts.append(comp(x[:, p : p + n], p, st))
                p += n
        torch.testing.assert_close(torch.cat(parts, 1), full, rtol=1e-6, atol=1e-6)  # incremental == one shot
    assert len(calls) >= 2 * len(comps) and max(calls) > 0  # later calls read an offset RoPE slice
    comp = comps[0]
    with torch.no_grad():
        fast = comp(x, 0, _state(comp))
        monkeypatch.setattr(K_COMP, "compressor_torch", kernels.naive_compressor)
        torch.testing.assert_close(comp(x, 0, _state(comp)), fast, rtol=1e-6, atol=1e-6)
