"""The model runner: builds each forward call's flat inputs, keeps the per-sequence cache bookkeeping, runs the model.

model.py holds only the math. Everything about *where* a call's tokens come from and where their cache rows go lives
here: the runner checks the input, lays the tokens of one or many sequences on one token axis (a `Packing` of
`Span`s), and hands that object to the layers, which read it; attention asks it for the rows to attend
(`Packing.attention_rows`), which reads and writes each sequence's state. After the layers, the runner advances the
states. No module-global context: the step's inputs travel as an explicit argument (docs/architecture.md, "The
model runner").

A call runs tokens [b, s]. With one span (`ModelRunner.forward`) the s tokens are consecutive positions of the b
sequences of one batched state. With many spans (`ModelRunner.forward_packed`, the engine's step) b = 1 and the
token axis packs pieces of different sequences, each continuing its own state at its own position: a prefill chunk
of one request beside one decode token of each of the others, all through the same matmuls and one attention launch.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

import torch

from inference.errors import InputError
from inference.model.attention_ops import KVPools, kv_pools, merge_pools
from inference.model.config import BLOCK_TOKENS
from inference.model.state import ModelState

if TYPE_CHECKING:
    from inference.model.model import Compressor, Transformer


def check_token_ids(lo: int, hi: int, vocab: int, where: str = "") -> None:
    """InputError unless the smallest (lo) and largest (hi) token ids lie in [0, vocab)."""
    if lo < 0 or hi >= vocab:
        raise InputError(f"{where}token ids must lie in [0, {vocab}); got {lo}…{hi}")


@dataclass(frozen=True)
class Span:
    """One state's piece of the token axis: tokens offset … offset+n at positions start … start+n."""

    state: object  # inference.model.state.ModelState or inference.engine.paged_state.PagedState
    start: int
    offset: int
    n: int


@dataclass(frozen=True)
class Packing:
    """The spans of a call plus, per token of the axis, its position and its span. Layers read it; only
    `attention_rows` touches the states (it is the cache bookkeeping of one attention layer)."""

    spans: tuple[Span, ...]
    positions: torch.Tensor  # int64 [s]
    span_ids: torch.Tensor  # int64 [s]
    # a step of one decode token per paged sequence (several, CPU) does each layer's bookkeeping for all of them in a
    # few ops (`_decode_rows`); tests turn it off to compare with the per-sequence path
    batched_decode: ClassVar[bool] = True
    _step: dict = field(default_factory=dict, repr=False, compare=False)  # what every layer of the call shares

    @classmethod
    def of(cls, spans: list[Span], device) -> Packing:
        if len({id(sp.state) for sp in spans}) != len(spans):
            raise InputError("a state can appear only once in a call")
        if any(sp.n < 1 for sp in spans):
            raise InputError("every span needs at least one token")
        if all(sp.n == 1 for sp in spans):  # one token each (a decode step)
            return cls(tuple(spans), torch.tensor([sp.start for sp in spans], device=device),
                       torch.arange(len(spans), device=device))
        pos = torch.cat([torch.arange(sp.start, sp.start + sp.n, device=device) for sp in spans])
        ids = torch.repeat_interleave(torch.arange(len(spans), device=device),
                                      torch.tensor([sp.n for sp in spans], device=device))
        return cls(tuple(spans), pos, ids)

    @property
    def tokens(self) -> int:
        return self.positions.numel()

    def seq_ids(self, batch: int) -> torch.Tensor:
        """int32 [batch, s]: the kernels' sequence index of every query (span-major, then batch row)."""
        rows = torch.arange(batch, device=self.span_ids.device)[:, None]
        return (self.span_ids[None, :] * batch + rows).to(torch.int32)

    def last_tokens(self) -> torch.Tensor:
        """Index on the token axis of each span's last token [len(spans)]."""
        return torch.tensor([sp.offset + sp.n - 1 for sp in self.spans], device=self.positions.device)

    def attention_rows(self, layer_id: int, x: torch.Tensor, kv: torch.Tensor, compressor: Compressor | None,
                       indexer_compressor: Compressor | None) -> tuple[KVPools, tuple | None, int]:
        """One attention layer's cache step for this call's tokens x [b,s,dim] with their raw rows kv [b,s,d].

        Per span: read its window, close its compressed rows (and CSA indexer keys), write its window. Returns the
        kernel pools of all spans (window rows copied, history rows read in place from a paged cache), the indexer
        keys as one (pool, table) (CSA) and the largest compressed-row count among the spans. A decode step of many
        paged sequences does all of that for every sequence at once (`_decode_rows`)."""
        ratio = compressor.ratio if compressor is not None else 0
        proj = iproj = None
        if compressor is not None:  # one projection for every span's tokens
            proj = compressor.project(x, self.positions)
            iproj = indexer_compressor.project(x, self.positions) if indexer_compressor is not None else None
        if self._decode_step(layer_id, x) is not None:
            return self._decode_rows(layer_id, x, kv, compressor, indexer_compressor, proj, iproj)
        windows, rows, keys, n_comp = [], [], [], 0
        # a step of paged decode tokens only reads each ring as it is (mixed with a prefill chunk, whose window is
        # copied anyway, the rings are copied too: one small pool beats concatenating the whole window pool)
        in_place = all(sp.n == 1 and hasattr(sp.state.layers[layer_id], "window_in_place") for sp in self.spans)
        closed = {}  # decode tokens of several sequences on CPU: the windows they close pooled in one call each
        if compressor is not None and in_place and len(self.spans) > 1 and not x.is_cuda \
                and not compressor.reference_numerics:
            for comp, pr, key in ((compressor, proj, "compressor"), (indexer_compressor, iproj, "indexer")):
                if comp is not None:
                    closed[key] = comp.close_decode(
                        [(pr[0][:, sp.offset : sp.offset + 1], pr[1][:, sp.offset : sp.offset + 1], sp.start,
                          getattr(sp.state.layers[layer_id], key)) for sp in self.spans], x.dtype)
        for i, sp in enumerate(self.spans):
            st, part = sp.state.layers[layer_id], slice(sp.offset, sp.offset + sp.n)
            if in_place:
                st.write_window(kv[:, part], sp.start)
                windows.append(st.window_in_place(sp.start))
            else:
                prev = st.window_rows(sp.start)  # [b,P,d]
                windows.append((torch.cat([prev, kv[:, part]], dim=1).to(x.dtype), sp.start - prev.shape[1]))
            if compressor is not None:
                new = closed["compressor"][i] if closed else compressor.close(proj[0][:, part], proj[1][:, part],
                                                                             sp.start, st.compressor, x.dtype)
                st.comp_rows.append(new)
                rows.append(st.comp_rows.blocks(BLOCK_TOKENS // ratio))
                n_comp = max(n_comp, (sp.start + sp.n) // ratio)
                if indexer_compressor is not None:
                    new = closed["indexer"][i] if closed else indexer_compressor.close(
                        iproj[0][:, part], iproj[1][:, part], sp.start, st.indexer, x.dtype)
                    st.index_keys.append(new)
                    keys.append(st.index_keys.blocks(BLOCK_TOKENS // ratio))
            if not in_place:
                st.write_window(kv[:, part], sp.start)
        pools = kv_pools(windows, rows, ratio)
        return pools, merge_pools(keys, x.dtype) if keys else None, n_comp

    def _decode_step(self, layer_id: int, x: torch.Tensor) -> dict | None:
        """When every span is one decode token of a paged sequence (several of them, on one cache, CPU): what the
        call's layers share, built at the first layer: the sequences' window slots, their tokens' ring rows, the
        window table (every block at the sequence's slot, as window_in_place) and the block table of compressed rows
        and indexer keys (the same for every layer), short tables padded with block 0 (never read, as merge_pools
        pads). None otherwise."""
        step = self._step
        if "decode" not in step:
            sts = [sp.state for sp in self.spans]
            ok = (self.batched_decode and len(sts) > 1 and not x.is_cuda
                  and all(sp.n == 1 and hasattr(st, "pools") and st.pools is sts[0].pools
                          and hasattr(st.layers[layer_id], "window_in_place") for sp, st in zip(self.spans, sts)))
            if not ok:
                step["decode"] = None
            else:
                dev = self.positions.device
                width = max(len(st.block_table) for st in sts)
                table = torch.tensor([st.block_table + [0] * (width - len(st.block_table)) for st in sts],
                                     dtype=torch.int32, device=dev)
                slots = torch.tensor([st.slot for st in sts], device=dev)
                nblk = max(sp.start for sp in self.spans) // BLOCK_TOKENS + 1
                step["decode"] = {"slots": slots, "ring_rows": self.positions % BLOCK_TOKENS, "table": table,
                                  "win_table": slots.to(torch.int32)[:, None].expand(-1, nblk).contiguous(),
                                  "n_tokens": max(sp.start for sp in self.spans) + 1}
        return step["decode"]

    def _decode_rows(self, layer_id: int, x: torch.Tensor, kv: torch.Tensor, compressor: Compressor | None,
                     indexer_compressor: Compressor | None, proj, iproj) -> tuple[KVPools, tuple | None, int]:
        """attention_rows for a `_decode_step` call: every window row written with one store, the open windows and
        the windows that close handled for all sequences at once (Compressor.close_decode_rows), the rows closed
        stored with one store (PagedRows.append_decode), and the tables shared by all layers."""
        step = self._step["decode"]
        layers = [sp.state.layers[layer_id] for sp in self.spans]
        pools = self.spans[0].state.pools
        win = pools.window[layer_id]
        win[step["slots"], step["ring_rows"]] = kv[0].to(win.dtype)
        if compressor is None:
            return KVPools(win, step["win_table"], None, None, 0), None, 0
        starts = [sp.start for sp in self.spans]
        keys = None
        for comp, pr, kind in ((compressor, proj, "compressor"), (indexer_compressor, iproj, "indexer")):
            if comp is None:
                continue
            states = [getattr(st, kind) for st in layers]
            targets = [st.comp_rows if kind == "compressor" else st.index_keys for st in layers]
            if comp.reference_numerics:  # rows quantized per sequence, as close() does
                for i, (p, cs) in enumerate(zip(starts, states)):
                    targets[i].append(comp.close(pr[0][:, i : i + 1], pr[1][:, i : i + 1], p, cs, x.dtype))
            else:
                idx, rows = comp.close_decode_rows(pr[0][0], pr[1][0], starts, states, x.dtype)
                if idx:  # PagedRows.append_decode: one row to each of these sequences
                    type(targets[0]).append_decode([targets[i] for i in idx], rows)
            if kind == "indexer":
                keys = (pools.keys[layer_id].to(x.dtype), step["table"])
        ratio = compressor.ratio
        n_comp = step["n_tokens"] // ratio  # the most compressed rows a sequence has
        return KVPools(win, step["win_table"], pools.rows[layer_id].to(win.dtype), step["table"], ratio), keys, n_comp


class ModelRunner:
    """Runs a Transformer over states: one prompt in one piece, a chunked prefill, one decode step, or pieces of many
    sequences in one call. Checks the input, builds the Packing, advances every state after the layers."""

    def __init__(self, model: Transformer):
        self.model = model
        self.args = model.args

    def new_state(self, batch: int = 1) -> ModelState:
        return ModelState.new(self.args, batch, self.model.dtype, self.model.head.weight.device)

    @torch.no_grad()
    def forward(self, input_ids: torch.Tensor, start_pos: int = 0, state: ModelState | None = None,
                last_only: bool = False, chunk_tokens: int | None = None) -> torch.Tensor:
        """input_ids [b,s] at positions start_pos… -> fp32 logits [b,s,vocab] ([b,1,vocab] with last_only).

        With a state, continues it (start_pos must equal state.num_tokens) and updates it in place.
        chunk_tokens runs a long prompt as a chunked prefill through the state (activations bounded by the chunk)."""
        if chunk_tokens is not None and chunk_tokens < 1:
            raise InputError(f"chunk_tokens must be positive, got {chunk_tokens}")
        s = input_ids.shape[-1]
        if chunk_tokens is None or s <= chunk_tokens:
            x = self.forward_hidden(input_ids, start_pos, state)
            return self.model.logits(x[:, -1:] if last_only else x)
        if state is None:
            if start_pos:
                raise InputError("start_pos > 0 needs the state of the earlier positions")
            state = self.new_state(input_ids.shape[0])
        out = []
        for c0 in range(0, s, chunk_tokens):
            x = self.forward_hidden(input_ids[:, c0 : c0 + chunk_tokens], start_pos + c0, state)
            if not last_only or c0 + chunk_tokens >= s:
                out.append(self.model.logits(x[:, -1:] if last_only else x))
        return torch.cat(out, dim=1)

    __call__ = forward

    @torch.no_grad()
    def forward_hidden(self, input_ids: torch.Tensor, start_pos: int = 0,
                       state: ModelState | None = None) -> torch.Tensor:
        """The final residual streams [b,s,hc,dim] (before hc_head; the MTP block's input)."""
        a = self.args
        if input_ids.dim() != 2 or input_ids.shape[1] == 0:
            raise InputError(f"input_ids must be [batch, tokens] with at least one token, got {tuple(input_ids.shape)}")
        check_token_ids(int(input_ids.min()), int(input_ids.max()), a.vocab_size)
        b, s = input_ids.shape
        if start_pos + s > a.max_position_embeddings:
            raise InputError(f"positions up to {start_pos + s} exceed max_position_embeddings "
                             f"{a.max_position_embeddings}")
        if state is None:
            if start_pos:
                raise InputError("start_pos > 0 needs the state of the earlier positions")
            state = self.new_state(b)
        state.check_start(start_pos, b)
        return self._run(input_ids, Packing.of([Span(state, start_pos, 0, s)], input_ids.device))

    @torch.no_grad()
    def forward_packed(self, pieces: list[tuple[object, list[int]]]) -> torch.Tensor:
        """Pieces of different sequences in one call: (state of batch 1, its next token ids) each, every state
        continuing at its own num_tokens -> fp32 logits [len(pieces), vocab] of each piece's last token.

        One matmul per weight for all pieces' tokens and one attention launch per layer; this is how the engine runs
        prefill chunks and decode tokens of many requests in one step."""
        check_pieces(pieces, self.args)
        spans, flat, offset = [], [], 0
        for state, ids in pieces:
            spans.append(Span(state, state.num_tokens, offset, len(ids)))
            flat += ids
            offset += len(ids)
        device = self.model.head.weight.device
        pk = Packing.of(spans, device)
        with _one_thread_if(device.type == "cpu" and offset == 1):  # one decode token alone (see _one_thread_if)
            x = self._run(torch.tensor([flat], dtype=torch.long, device=device), pk)
        return self.model.logits(x[:, pk.last_tokens()])[0]

    @torch.no_grad()
    def forward_mtp(self, x_last: torch.Tensor, next_ids: torch.Tensor, start_pos: int, state: ModelState,
                    depth: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """MTP draft logits [b,s,vocab] for the tokens after next_ids, and the MTP residual for a further depth.

        x_last: the target's residual streams at the same positions; the MTP layer keeps its own window state."""
        if depth >= len(self.model.mtp):
            raise InputError(f"the checkpoint has {len(self.model.mtp)} MTP layers; depth {depth} does not exist")
        pk = Packing.of([Span(state, start_pos, 0, next_ids.shape[1])], next_ids.device)
        return self.model.forward_mtp(x_last, next_ids, pk, depth)

    def _run(self, input_ids: torch.Tensor, pk: Packing) -> torch.Tensor:
        """The model over a call's tokens [b, s], then every span's state advanced past its tokens."""
        x = self.model(input_ids, pk)
        for sp in pk.spans:
            sp.state.num_tokens += sp.n
            if getattr(sp.state, "logs_tokens", True):
                sp.state.token_ids.append(input_ids[:, sp.offset : sp.offset + sp.n].detach().clone())
        return x


@contextlib.contextmanager
def _one_thread_if(cond: bool):
    """torch on one thread inside, when cond: a CPU step of one decode token is ≈ 2000 small ops, each of which
    pays more to wake and join a second OpenMP thread than it gains from it (small model, 2 cores, passive waits:
    20.5 vs 26.2 ms a step at 8K, 19.1 vs 22.3 at 1K; from 4 requests on, two threads win or tie). The output head
    after it runs on every thread again (docs/cpu-profile.md, "one decode token on one thread")."""
    if not cond:
        yield
        return
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


def check_pieces(pieces, args) -> None:
    """forward_packed's input checks: at least one piece, each with tokens in the vocabulary, positions within the
    model's range, and a state that can take them (InputError otherwise)."""
    if not pieces:
        raise InputError("forward_packed needs at least one piece")
    for i, (state, ids) in enumerate(pieces):
        if not ids:
            raise InputError(f"piece {i} has no tokens")
        check_token_ids(min(ids), max(ids), args.vocab_size, f"piece {i}: ")
        if state.num_tokens + len(ids) > args.max_position_embeddings:
            raise InputError(f"piece {i}: positions up to {state.num_tokens + len(ids)} exceed "
                             f"max_position_embeddings {args.max_position_embeddings}")
        state.check_start(state.num_tokens, 1)
