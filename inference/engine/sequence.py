"""One request inside the engine: its tokens, state on the cache, counters and status."""

import enum
from dataclasses import dataclass

from inference.engine.detok import Detokenizer
from inference.engine.paged_state import PagedState
from inference.engine.sampling import Sampler, SamplingParams


class Status(enum.Enum):
    WAITING = "waiting"
    PREFILLING = "prefilling"
    DECODING = "decoding"
    FINISHED = "finished"
    ABORTED = "aborted"


@dataclass
class RequestOutput:
    request_id: str
    new_token_ids: list[int]
    new_text: str  # detokenized delta (incremental, UTF-8 safe), with stop strings removed
    finished: bool
    finish_reason: str | None  # "stop" | "length" | "abort" | None
    prompt_tokens: int
    cached_tokens: int  # positions neither prefilled nor recomputed
    completion_tokens: int
    error: str | None = None  # set when the request was aborted because running it failed


@dataclass
class RequestProgress:
    request_id: str
    state: str  # "waiting" | "prefilling" | "decoding" | "finished" | "aborted"
    prefill_tokens_done: int
    prefill_tokens_total: int
    tokens_generated: int
    cached_tokens: int


class Sequence:
    """Prompt + generated tokens; `num_computed` positions are in its state (= state.num_tokens)."""

    def __init__(self, request_id: str, prompt_ids: list[int], params: SamplingParams, detok: Detokenizer,
                 arrival: int, cache_root: bytes | None = None):
        self.request_id, self.prompt_ids, self.params = request_id, list(prompt_ids), params
        self.cache_root = cache_root  # first parent of its block chain: its cache_salt's (kept across preemption)
        self.output_ids: list[int] = []
        self.sampler, self.detok, self.arrival = Sampler(params), detok, arrival
        self.status = Status.WAITING
        self.state: PagedState | None = None
        self.block_keys: list[bytes] = []  # keys of this sequence's registered full blocks, in order
        self.cached_tokens = 0
        self.prompt_done = 0  # prompt positions computed or served from cache (progress; survives preemption)
        self.num_emitted = 0  # output tokens already returned in a RequestOutput
        self.finish_reason: str | None = None
        self.num_preemptions = 0
        self.full_block_keys: list[bytes] = []  # chained keys of token_ids' full blocks (Scheduler.block_keys_of)
        self.wanted_checkpoints: set[int] = set()  # block counts where requests waiting on this one resume
        self.thinking_closed = False  # params.end_thinking_id has been generated (thinking budget)
        # prefix store (inference/engine/snapshot_hooks.py): restore in flight, blocks it pinned, memory's share
        self.prefix_tag: str | None = None  # snapshots written for this request carry it (DELETE /v1/prefixes)
        self.restore = None  # PendingRestore while the store looks for a stored prefix (admission waits)
        self.restore_pins: list[int] = []  # restored blocks held until admission takes its own references
        self.restored_from: int | None = None  # with a restore: positions memory already held (the rest restored)

    @property
    def token_ids(self) -> list[int]:
        return self.prompt_ids + self.output_ids

    def tokens(self, start: int, end: int) -> list[int]:
        """token_ids[start:end] without copying the whole (possibly 1M-token) prompt."""
        n = len(self.prompt_ids)
        head = self.prompt_ids[start : min(end, n)]
        return head + self.output_ids[max(start - n, 0) : max(end - n, 0)] if end > n else head

    @property
    def num_tokens(self) -> int:
        return len(self.prompt_ids) + len(self.output_ids)

    @property
    def num_computed(self) -> int:
        return self.state.num_tokens if self.state is not None else 0

    @property
    def block_table(self) -> list[int]:
        return self.state.block_table if self.state is not None else []

    @property
    def is_finished(self) -> bool:
        return self.status in (Status.FINISHED, Status.ABORTED)

    def progress(self) -> RequestProgress:
        return RequestProgress(self.request_id, self.status.value, self.prompt_done, len(self.prompt_ids),
                               len(self.output_ids), self.cached_tokens)
