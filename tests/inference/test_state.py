"""Incremental state: prefill (whole or chunked) then one-token decode equals a full forward of the longer sequence."""

import pytest
import torch

import inference.model.model as model_mod
from inference.checkpoint.loader import load_model
from inference.errors import InputError
from inference.model.runner import ModelRunner
from tests.inference.configs import v4_config

# topk 64 >= every visible compressed row here: no indexer selection, so no tie can differ between paths
EXACT = v4_config(index_topk=64)
# topk 4 with 16 index heads: the indexer really selects; seeds chosen tie-free
SELECTING = v4_config()
# real ratios 4 / 128 and the real 128-token window
REAL_RATIOS = v4_config(compress_ratios=[0, 4, 128, 4, 0], sliding_window=128, index_topk=16)


def _runner(path, **overrides) -> ModelRunner:
    return ModelRunner(load_model(path, **overrides))


def _ids(n, seed=5, vocab=512):
    return torch.randint(2, vocab, (1, n), generator=torch.Generator().manual_seed(seed))


def _check_prefill_then_decode(model, prompt_len, decode=5, atol=2e-5):
    ids = _ids(prompt_len + decode)
    full = model(ids)
    state = model.new_state()
    got = [model(ids[:, :prompt_len], 0, state)]
    for t in range(prompt_len, prompt_len + decode):
        got.append(model(ids[:, t : t + 1], t, state))
    got = torch.cat(got, dim=1)
    assert state.num_tokens == prompt_len + decode
    assert (got - full).abs().max().item() <= atol, f"prompt {prompt_len}"


# window 8, ratios 4 and 16, block 128: lengths on and around each boundary
@pytest.mark.slow
@pytest.mark.parametrize("prompt_len", [1, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 33, 127, 128, 129])
def test_decode_after_prefill_matches_full_forward(checkpoint_dir, prompt_len):
    _check_prefill_then_decode(_runner(checkpoint_dir(EXACT)), prompt_len)


@pytest.mark.slow
@pytest.mark.parametrize("prompt_len", [16, 17, 40, 64, 65])
def test_decode_with_indexer_selection_matches_full_forward(checkpoint_dir, prompt_len):
    _check_prefill_then_decode(_runner(checkpoint_dir(SELECTING)), prompt_len)


@pytest.mark.slow
@pytest.mark.parametrize("prompt_len", [127, 128, 129])
def test_decode_at_real_ratio_and_window_boundaries(checkpoint_dir, prompt_len):
    _check_prefill_then_decode(_runner(checkpoint_dir(REAL_RATIOS)), prompt_len, decode=3)


@pytest.mark.parametrize("chunks", [[5, 11, 1, 16, 100], [128, 5], [1] * 20 + [113], [3, 4, 126]])
def test_chunked_prefill_matches_one_piece(checkpoint_dir, chunks):
    model = _runner(checkpoint_dir(SELECTING))
    ids = _ids(sum(chunks))
    full = model(ids)
    state, pos, got = model.new_state(), 0, []
    for n in chunks:
        got.append(model(ids[:, pos : pos + n], pos, state))
        pos += n
    assert (torch.cat(got, dim=1) - full).abs().max().item() <= 2e-5


def test_state_follows_the_cache_contract_layout(checkpoint_dir):
    model = _runner(checkpoint_dir(EXACT))
    state = model.new_state()
    model(_ids(300), 0, state)
    a = model.args
    for i, (ratio, st) in enumerate(zip(a.compress_ratios[: a.num_hidden_layers], state.layers)):
        rows, keys = state.history_block(i, 1)
        if ratio == 0:
            assert rows is None and st.comp_rows is None
            continue
        assert rows.shape == (1, 128 // ratio, a.head_dim)  # one history block = 128 positions
        assert st.comp_rows.n == 300 // ratio
        if ratio == 4:
            assert keys.shape == (1, 32, a.index_head_dim) and st.indexer.carry_kv.shape == (1, 4, a.index_head_dim)
        assert st.window.shape == (1, a.sliding_window, a.head_dim)
    expected = 2 * (a.head_dim + a.index_head_dim) * 4 / 4 + a.head_dim * 4 / 16  # fp32 rows per token
    assert state.bytes_per_token() == expected


def test_start_pos_must_continue_the_state(checkpoint_dir):
    model = _runner(checkpoint_dir(EXACT))
    state = model.new_state()
    model(_ids(10), 0, state)
    with pytest.raises(InputError, match="does not continue"):
        model(_ids(1), 12, state)
    with pytest.raises(InputError, match="needs the state"):
        model(_ids(1), 3)


def test_out_of_range_token_ids_are_rejected(checkpoint_dir):
    model = _runner(checkpoint_dir(EXACT))
    with pytest.raises(InputError, match="token ids"):
        model(torch.tensor([[1, 2, 512]]))
    with pytest.raises(InputError, match="at least one token"):
        model(torch.zeros(1, 0, dtype=torch.long))


def test_query_chunked_attention_equals_unchunked(checkpoint_dir, monkeypatch):
    ckpt = checkpoint_dir(SELECTING)
    ids = _ids(200)
    whole = _runner(ckpt)(ids)
    shapes = []
    real = model_mod.attend

    def recording(q, seq_ids, positions, pools, sink, scale, window, topk_idxs=None):
        shapes.append((q.shape[1], topk_idxs.shape[2] if topk_idxs is not None else 0))
        return real(q, seq_ids, positions, pools, sink, scale, window, topk_idxs)

    monkeypatch.setattr(model_mod, "attend", recording)
    chunked = _runner(ckpt, attn_chunk_elems=10_000)(ids)
    # fp32 rounding only: the kernels' banded window GEMM changes shape with the query chunk
    assert (chunked - whole).abs().max().item() <= 5e-5
    assert max(s[0] for s in shapes) < 200 and len(shapes) > 4 * 4  # several query chunks in each of 4 layers
    assert max(s[0] * s[1] for s in shapes) < 200 * 200  # no [T, T] index list, let alone scores


@pytest.mark.slow
def test_reference_numerics_change_logits_and_keep_incremental_exact(checkpoint_dir):
    ckpt = checkpoint_dir(EXACT)  # every visible row is selected, so only the fp8 KV rounding differs
    ids = _ids(70)
    plain = _runner(ckpt)(ids)
    model = _runner(ckpt, reference_numerics=True)
    quant = model(ids)
    diff = (quant - plain).abs().max().item()
    assert diff > 1e-3  # fp8 KV rounding is on (a random tiny model reacts to it about as much as to bf16)
    assert (quant.argmax(-1) == plain.argmax(-1)).float().mean().item() > 0.6
    state = model.new_state()
    got = torch.cat([model(ids[:, :50], 0, state)] + [model(ids[:, t : t + 1], t, state) for t in range(50, 70)], 1)
    # fp32 rounding only, but an fp8 bucket can flip on a 1-ulp input change (seen: 6e-5 on AVX-512 machines)
    assert (got - quant).abs().max().item() <= 2e-4


@pytest.mark.slow
def test_mtp_block_loads_and_drafts_from_the_target_residual(checkpoint_dir):
    model = _runner(checkpoint_dir(EXACT))
    assert model.model.mtp[0].e_proj.weight.abs().sum() > 0  # weights came from the checkpoint, not the zero init
    ids = _ids(20)
    state = model.new_state()
    x_last = model.forward_hidden(ids[:, :19], 0, state)
    logits, resid = model.forward_mtp(x_last, ids[:, 1:20], 0, state)
    assert logits.shape == (1, 19, 512) and resid.shape == x_last.shape and torch.isfinite(logits).all()
    # one more MTP step continues its own window state and matches running both positions at once
    fresh = model.new_state()
    x_all = model.forward_hidden(ids[:, :19], 0, fresh)
    a, _ = model.forward_mtp(x_all[:, :10], ids[:, 1:11], 0, fresh)
    b, _ = model.forward_mtp(x_all[:, 10:], ids[:, 11:20], 10, fresh)
    assert (torch.cat([a, b], 1) - logits).abs().max().item() <= 2e-5


def test_a_batch_of_sequences_equals_separate_runs(checkpoint_dir):
    model = _runner(checkpoint_dir(SELECTING))
    a, b = _ids(40, seed=1), _ids(40, seed=2)
    batch = model(torch.cat([a, b]))
    assert (batch[0] - model(a)[0]).abs().max().item() <= 2e-5
    assert (batch[1] - model(b)[0]).abs().max().item() <= 2e-5


@pytest.mark.slow
def test_forward_with_chunk_tokens_equals_one_piece(checkpoint_dir):
    model = _runner(checkpoint_dir(SELECTING))
    ids = _ids(90)
    full = model(ids)
    assert (model(ids, chunk_tokens=17) - full).abs().max().item() <= 2e-5
    last = model(ids, last_only=True, chunk_tokens=32)
    assert last.shape == (1, 1, 512) and (last[0, 0] - full[0, -1]).abs().max().item() <= 2e-5
    with pytest.raises(InputError, match="chunk_tokens"):
        model(ids, chunk_tokens=0)


@pytest.mark.slow
@pytest.mark.parametrize("config,numerics", [(SELECTING, False), (REAL_RATIOS, False), (EXACT, True)],
                         ids=["selecting", "real-ratios", "reference-numerics"])
def test_packed_pieces_of_different_sequences_equal_separate_runs(checkpoint_dir, config, numerics):
    """forward_packed: three sequences at different positions (prefill chunks, decode tokens, a first chunk) in
    each call, over several calls, give every sequence the logits of its own full forward."""
    model = _runner(checkpoint_dir(config), reference_numerics=numerics)
    lens = {"a": 150, "b": 41, "c": 133}
    ids = {k: _ids(n, seed=10 + i) for i, (k, n) in enumerate(lens.items())}
    full = {k: model(v)[0] for k, v in ids.items()}
    states = {k: model.new_state() for k in lens}
    plan = [{"a": 100, "b": 1, "c": 7}, {"a": 27, "b": 17, "c": 1}, {"a": 1, "b": 22, "c": 125},
            {"a": 22, "b": 1}]  # b decodes from position 18 on; a crosses 128 inside a call
    for call in plan:
        pieces, ends = [], []
        for k, n in call.items():
            p = states[k].num_tokens
            pieces.append((states[k], ids[k][0, p : p + n].tolist()))
            ends.append((k, p + n - 1))
        out = model.forward_packed(pieces)
        assert out.shape == (len(call), 512)
        for row, (k, pos) in zip(out, ends):
            assert (row - full[k][pos]).abs().max().item() <= (2e-4 if numerics else 2e-5), (k, pos)
    assert {k: st.num_tokens for k, st in states.items()} == lens


def test_packed_forward_refuses_bad_pieces_before_any_work(checkpoint_dir):
    model = _runner(checkpoint_dir(EXACT))
    st = model.new_state()
    with pytest.raises(InputError, match="piece 1: token ids"):
        model.forward_packed([(st, [3, 4]), (model.new_state(), [5, 9999])])
    with pytest.raises(InputError, match="piece 0 has no tokens"):
        model.forward_packed([(st, [])])
    with pytest.raises(InputError, match="only once"):
        model.forward_packed([(st, [3]), (st, [4])])
    assert st.num_tokens == 0 and st.layers[0].window.abs().sum() == 0  # nothing ran
