"""The in-process engine: requests in, one scheduler step at a time, incremental outputs out (not thread-safe)."""

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from inference.engine.block_manager import BlockManager, salt_root
from inference.engine.config import EngineConfig
from inference.engine.detok import Detokenizer
from inference.engine.layout import CacheLayout
from inference.engine.pools import TORCH_DTYPES, CachePools, plan_pools
from inference.engine.sampling import SamplingParams
from inference.engine.scheduler import Scheduler
from inference.engine.sequence import RequestOutput, RequestProgress, Sequence, Status
from inference.errors import DuplicateRequest, InputError, PromptTooLong, QueueFull
from inference.model.config import BLOCK_TOKENS
from inference.model.model import Transformer
from inference.model.runner import ModelRunner, check_token_ids

log = logging.getLogger("inference.engine")
DEFAULT_CONFIG, DEFAULT_PARAMS = EngineConfig(), SamplingParams()


@dataclass
class EngineStats:
    num_waiting: int
    num_running: int
    cache_blocks_used: int
    cache_blocks_total: int
    cache_usage: float  # referenced history blocks / all history blocks
    cache_blocks_cached: int  # unreferenced blocks kept for prefix hits
    prefix_hit_tokens: int
    prefix_query_tokens: int
    prefill_tokens: int
    decode_tokens: int
    num_preemptions: int
    cache_bytes: int  # allocated pool bytes
    forward_calls: int = 0  # steps that ran the model (one call each, whatever the number of requests in it)
    forward_pieces: int = 0  # requests' pieces over those calls: / forward_calls = requests batched per call
    restored_tokens: int = 0  # of prefix_hit_tokens: restored from the prefix store (docs/prefix-store.md)
    recomputed_tokens: int = 0  # positions behind a hit recomputed for want of a checkpoint (not in hit tokens)
    restore_timeouts: int = 0  # restores given up on (restore_timeout_s): those requests computed their prefix


class Engine:
    """Shares one model and one paged cache among many requests (continuous batching, chunked prefill)."""

    def __init__(self, model: Transformer, config: EngineConfig = DEFAULT_CONFIG, tokenizer=None, model_id: str = ""):
        self.model, self.config, self.tokenizer = model, config, tokenizer
        self.runner = ModelRunner(model)
        args = model.args
        self.layout = CacheLayout(args, config.dtype)
        slots = config.max_num_seqs + config.checkpoint_slots
        num_blocks = plan_pools(self.layout, config.cache_bytes, slots)
        self.pools = CachePools(self.layout, num_blocks, slots, model.head.weight.device)
        salt = f"{config.model_id or model_id}|{config.dtype}|{args.reference_numerics}".encode()
        self.blocks = BlockManager(num_blocks, slots, salt, config.checkpoint_slots)
        self.scheduler = Scheduler(config, self.blocks, self.pools)
        limit = config.max_model_len or args.max_position_embeddings
        self.max_model_len = min(limit, args.max_position_embeddings, num_blocks * BLOCK_TOKENS)
        self.seqs: dict[str, Sequence] = {}
        self.eos = args.eos_token_id
        self.prefill_tokens = self.decode_tokens = 0
        self.forward_calls = self.forward_pieces = 0
        self._arrivals = 0
        self._step_s = 0.0  # moving average of a step's duration (for retry_after_s)
        self.snapshots = None  # SnapshotHooks once a prefix store is attached

    def attach_prefix_store(self, store) -> None:
        """Restore and write document prefixes through `store` (inference.prefix_store.PrefixStore)."""
        from inference.engine.snapshot_hooks import SnapshotHooks

        self.snapshots = SnapshotHooks(self, store)

    @classmethod
    def from_checkpoint(cls, path, config: EngineConfig = DEFAULT_CONFIG) -> "Engine":
        from inference.checkpoint.loader import load_model
        from inference.text.tokenizer import load_tokenizer

        overrides = {} if config.reference_numerics is None else {"reference_numerics": config.reference_numerics}
        model = load_model(path, TORCH_DTYPES[config.dtype], weights=config.weights, device=config.device, **overrides)
        tok = load_tokenizer(path) if (Path(path) / "tokenizer.json").exists() else None
        return cls(model, config, tok, model_id=str(Path(path).resolve()))

    ##### requests #####

    def add_request(self, request_id: str, prompt_token_ids: list[int], params: SamplingParams = DEFAULT_PARAMS,
                    cache_salt: str | None = None, prefix_tag: str | None = None) -> None:
        """Queue a request; refuses (typed errors) before any work if it cannot be served.

        `cache_salt` (e.g. one per tenant) gives the request its own prefix cache: it hits only blocks written by
        requests with the same salt; no salt is a cache of its own too."""
        seq = self.seqs.get(request_id)
        if seq is not None and not seq.is_finished:
            raise DuplicateRequest(f"request {request_id!r} is already in the engine")
        ids = list(prompt_token_ids)
        if not ids:
            raise InputError("the prompt is empty")
        check_token_ids(min(ids), max(ids), self.model.args.vocab_size)
        if len(ids) + params.max_tokens > self.max_model_len:
            raise PromptTooLong(len(ids), params.max_tokens, self.max_model_len)
        if params.stop and self.tokenizer is None:
            raise InputError("stop strings need the checkpoint's tokenizer.json")
        if cache_salt is not None and (not isinstance(cache_salt, str) or not cache_salt):
            raise InputError(f"cache_salt must be a non-empty string or None; got {cache_salt!r}")
        if len(self.scheduler.waiting) >= self.config.max_waiting:
            raise QueueFull(len(self.scheduler.waiting), max(1.0, round(self._step_s * 10, 1)))
        seq = Sequence(request_id, ids, params, Detokenizer(self.tokenizer, params.stop), self._arrivals,
                       salt_root(cache_salt))
        self._arrivals += 1
        self.seqs[request_id] = seq
        self.scheduler.waiting.append(seq)
        seq.prefix_tag = prefix_tag  # stored snapshots of its prefix carry it (deleted with its document)
        if self.snapshots is not None:
            self.snapshots.on_add(seq)

    def abort(self, request_id: str) -> bool:
        """Stop a request and free its blocks; False if it is unknown or already finished."""
        seq = self.seqs.get(request_id)
        if seq is None or seq.is_finished:
            return False
        if seq in self.scheduler.waiting:
            self.scheduler.waiting.remove(seq)
        if self.snapshots is not None:
            self.snapshots.release_pins(seq)
        self.scheduler.finish(seq, Status.ABORTED)
        seq.finish_reason = "abort"
        return True

    def progress(self, request_id: str) -> RequestProgress | None:
        seq = self.seqs.get(request_id)
        return seq.progress() if seq is not None else None

    def probe(self, token_ids: list[int], cache_salt: str | None = None) -> int:
        """Leading tokens a request with this prompt and salt would get from the cache (its cached_tokens); no side
        effects."""
        if not token_ids:
            return 0
        return self.scheduler.plan_hit(list(token_ids), salt_root(cache_salt))[2]

    def has_unfinished(self) -> bool:
        return bool(self.scheduler.waiting or self.scheduler.running)

    def stats(self) -> EngineStats:
        b = self.blocks
        used = b.num_blocks - b.num_free_blocks
        return EngineStats(len(self.scheduler.waiting), len(self.scheduler.running), used, b.num_blocks,
                           used / b.num_blocks, len(b.cached), self.scheduler.hit_tokens,
                           self.scheduler.query_tokens, self.prefill_tokens, self.decode_tokens,
                           self.scheduler.num_preemptions, self.pools.nbytes(), self.forward_calls,
                           self.forward_pieces, self.scheduler.restored_tokens, self.scheduler.recomputed_tokens,
                           self.snapshots.restore_timeouts if self.snapshots is not None else 0)

    ##### stepping #####

    def step(self) -> list[RequestOutput]:
        """One scheduler step (bounded by max_num_batched_tokens): every scheduled prefill chunk and decode token in
        one forward call; outputs of the requests that progressed."""
        t0 = time.perf_counter()
        if self.snapshots is not None:
            self.snapshots.poll()
        scheduled = self.scheduler.schedule()
        if not scheduled and self.snapshots is not None:
            self.snapshots.wait_briefly()
        outputs = self._execute(scheduled)
        self._step_s = 0.8 * self._step_s + 0.2 * (time.perf_counter() - t0)
        for seq_id in [k for k, s in self.seqs.items() if s.is_finished and s.num_emitted == len(s.output_ids)]:
            if len(self.seqs) > 4 * self.config.max_num_seqs + self.config.max_waiting:
                del self.seqs[seq_id]  # keep recent finished ones for progress(); forget the oldest
        return outputs

    def _execute(self, scheduled: list[tuple[Sequence, int]]) -> list[RequestOutput]:
        """Run a schedule: (sequence, tokens) pieces in one ModelRunner.forward_packed call."""
        outputs, work = [], []
        vocab = self.model.args.vocab_size
        for seq, n in scheduled:
            ids = seq.tokens(seq.num_computed, seq.num_computed + n)
            try:  # one request's bad input must not take the others down
                check_token_ids(min(ids), max(ids), vocab)
            except InputError as exc:
                outputs.append(self._fail(seq, exc))
            else:
                work.append((seq, ids))
        if work:
            self.forward_calls += 1
            self.forward_pieces += len(work)
            try:
                logits = self.runner.forward_packed([(seq.state, ids) for seq, ids in work])
            except Exception as exc:  # states may be half-updated: every request of this step ends
                log.exception("forward of %d requests failed; aborting them", len(work))
                outputs += [self._fail(seq, exc) for seq, _ in work]
            else:
                best = logits.argmax(-1).tolist()  # greedy picks of every row in one op (16 rows: 1.8 vs 3.2 ms)
                for (seq, ids), row, top in zip(work, logits, best):
                    try:
                        outputs.append(self._advance(seq, len(ids), row, top))
                    except Exception as exc:  # its bookkeeping (sampling, detokenizing) failed: only it ends
                        log.exception("request %s failed; aborting it", seq.request_id)
                        outputs.append(self._fail(seq, exc))
        return outputs

    def _fail(self, seq: Sequence, exc: Exception) -> RequestOutput:
        self.scheduler.finish(seq, Status.ABORTED)
        seq.finish_reason = "abort"
        out = self._output(seq, seq.output_ids[seq.num_emitted :], "")
        out.error = f"{type(exc).__name__}: {exc}"
        return out

    def _advance(self, seq: Sequence, n: int, logits: torch.Tensor, top: int) -> RequestOutput:
        """Bookkeeping after n of seq's tokens ran: blocks, checkpoint, and a sampled token at the prompt's end
        (top: the argmax of logits, a greedy request's token)."""
        st, start = seq.state, seq.num_computed - n
        if start < len(seq.prompt_ids):
            self.prefill_tokens += n
        else:
            self.decode_tokens += n
        seq.prompt_done = max(seq.prompt_done, min(st.num_tokens, len(seq.prompt_ids)))
        self._register_blocks(seq)
        if self.scheduler.checkpoint_at(seq, st.num_tokens):
            slot = self.blocks.add_checkpoint(st.block_table[st.num_tokens // BLOCK_TOKENS - 1])
            if slot is not None:
                st.save_checkpoint(slot)
            if self.snapshots is not None:
                self.snapshots.at_boundary(seq, st.num_tokens)
        if st.num_tokens < seq.num_tokens:  # prefill chunk that does not reach the end
            return self._output(seq, [], "")
        seq.status = Status.DECODING
        p = seq.params
        over_budget = (p.thinking_budget is not None and not seq.thinking_closed
                       and len(seq.output_ids) >= p.thinking_budget)
        tok = p.end_thinking_id if over_budget else seq.sampler(logits, top)
        seq.output_ids.append(tok)
        seq.thinking_closed = seq.thinking_closed or tok == p.end_thinking_id
        is_stop_token = (tok == self.eos and not p.ignore_eos) or tok in p.stop_token_ids
        text, hit_stop = ("", False) if is_stop_token else seq.detok.push([tok])
        if is_stop_token or hit_stop:
            seq.finish_reason = "stop"
        elif len(seq.output_ids) >= p.max_tokens or seq.num_tokens >= self.max_model_len:
            seq.finish_reason = "length"
            text += seq.detok.flush()
        if seq.finish_reason is not None:
            self.scheduler.finish(seq, Status.FINISHED)
        new = seq.output_ids[seq.num_emitted :]
        return self._output(seq, new, text)

    def _register_blocks(self, seq: Sequence) -> None:
        """Key every block the sequence has just filled (chained on its previous block's key)."""
        st = seq.state
        for i in range(len(seq.block_keys), st.num_tokens // BLOCK_TOKENS):
            parent = seq.block_keys[-1] if seq.block_keys else seq.cache_root
            chunk = seq.tokens(i * BLOCK_TOKENS, (i + 1) * BLOCK_TOKENS)
            seq.block_keys.append(self.blocks.register(st.block_table[i], parent, chunk))

    def _output(self, seq: Sequence, new: list[int], text: str) -> RequestOutput:
        seq.num_emitted += len(new)
        return RequestOutput(seq.request_id, new, text, seq.is_finished, seq.finish_reason, len(seq.prompt_ids),
                             seq.cached_tokens, len(seq.output_ids))
