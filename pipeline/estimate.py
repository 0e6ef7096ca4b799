"""Dry-run estimates before spending: tokens to prefill, tokens cached, expected output, time (and cost).

Cached tokens come from the server's cache probe when it has one (wholedoc's `/v1/cache/probe`); otherwise a
single request is assumed cold, and in a batch every request after the first about the same document is
assumed to hit the document prefix (rounded down to whole cache blocks) — an estimate that ignores cache hits
is wrong in both directions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace

from pipeline.client import InferenceClient
from pipeline.prompts import Prompt, prompt_tokens
from pipeline.prompts.budget import CHAT_OVERHEAD
from pipeline.tokens import count_tokens


@dataclass(frozen=True)
class Rates:
    """Throughput (tokens/s) and optional prices (per million tokens) used to turn counts into time and money."""

    prefill_tokens_per_s: float = 5_000.0
    decode_tokens_per_s: float = 40.0
    expected_output_ratio: float = 0.6  # expected output as a share of the cap (answers rarely use all of it)
    cache_block_tokens: int = 128  # the prefix cache shares whole blocks only (docs/cache-layout.md)
    input_price: float | None = None
    cached_price: float | None = None
    output_price: float | None = None

    def __post_init__(self):
        assert self.prefill_tokens_per_s > 0 and self.decode_tokens_per_s > 0, "rates must be positive"
        assert 0 < self.expected_output_ratio <= 1, "expected_output_ratio must be in (0, 1]"


@dataclass(frozen=True)
class Estimate:
    """Counts, seconds and (when prices are set) cost for one request or a batch."""

    requests: int
    prompt_tokens: int
    cached_tokens: int
    max_output_tokens: int
    expected_output_tokens: int
    prefill_seconds: float
    decode_seconds: float
    cache_source: str  # "probe" (the server said), "assumed" (batch reuse of a prefix) or "cold"
    cost: float | None = None

    @property
    def tokens_to_prefill(self) -> int:
        return self.prompt_tokens - self.cached_tokens

    @property
    def seconds(self) -> float:
        return self.prefill_seconds + self.decode_seconds

    def as_dict(self) -> dict:
        """JSON-ready, with the derived fields."""
        return asdict(self) | {"tokens_to_prefill": self.tokens_to_prefill, "seconds": round(self.seconds, 3)}


def estimate(
    prompt_tokens: int, max_output_tokens: int, *, cached_tokens: int = 0, requests: int = 1,
    rates: Rates = Rates(), cache_source: str = "cold",  # noqa: B008
) -> Estimate:
    """An estimate from counts alone."""
    assert 0 <= cached_tokens <= prompt_tokens, f"cached {cached_tokens} outside [0, {prompt_tokens}]"
    expected = round(max_output_tokens * rates.expected_output_ratio)
    cost = None
    if rates.input_price is not None and rates.output_price is not None:
        cached_price = rates.cached_price if rates.cached_price is not None else rates.input_price
        cost = ((prompt_tokens - cached_tokens) * rates.input_price + cached_tokens * cached_price
                + expected * rates.output_price) / 1e6
    return Estimate(requests, prompt_tokens, cached_tokens, max_output_tokens, expected,
                    (prompt_tokens - cached_tokens) / rates.prefill_tokens_per_s,
                    expected / rates.decode_tokens_per_s, cache_source, cost)


def estimate_prompt(prompt: Prompt, *, client: InferenceClient | None = None, rates: Rates = Rates(),  # noqa: B008
                    thinking: bool = False, tokenizer_path: str | None = None,
                    cache_salt: str | None = None) -> Estimate:
    """One request: counted locally, cached tokens from the server's probe when it has one (else assumed cold);
    `cache_salt`: the tenant's, so the probe sees only the cache its requests can hit."""
    n = prompt_tokens(prompt, tokenizer_path=tokenizer_path)
    probe = client.probe_cache(prompt.messages, cache_salt=cache_salt) if client is not None else None
    if probe is None:
        return estimate(n, prompt.output_tokens(thinking), rates=rates)
    return estimate(probe.prompt_tokens, prompt.output_tokens(thinking), cached_tokens=probe.cached_tokens,
                    rates=rates, cache_source="probe")


def estimate_batch(prompts: Sequence[Prompt], *, client: InferenceClient | None = None,
                   rates: Rates = Rates(), thinking: bool = False,  # noqa: B008
                   tokenizer_path: str | None = None, cache_salt: str | None = None) -> Estimate:
    """Many requests in order (bulk Q&A, per-style summaries): the first about a prefix pays for it (or what the
    probe says is missing); later ones reuse it, rounded down to whole cache blocks.

    On DeepSeek's API (a client of flavor "deepseek") the worker sends one warm-up request per document (the prefix
    alone, 1 output token) before its questions, and that API caches the prefix exactly at the warm-up's end: the
    warm-up is counted as a request that pays for the prefix, and every question then finds all of it cached."""
    deepseek = client is not None and client.config.flavor == "deepseek"
    total = cached = out_cap = expected = 0
    prefill_s = decode_s = 0.0
    seen: set[str] = set()
    sources = set()
    requests = 0
    for p in prompts:
        if deepseek and p.prefix not in seen:
            warm = estimate(prompt_tokens(Prompt(p.system, p.document, "", 1), tokenizer_path=tokenizer_path), 1,
                            rates=replace(rates, expected_output_ratio=1.0))  # the warm-up's one token
            total, out_cap, expected, requests = total + warm.prompt_tokens, out_cap + 1, expected + 1, requests + 1
            prefill_s, decode_s = prefill_s + warm.prefill_seconds, decode_s + warm.decode_seconds
            seen.add(p.prefix)
            cached_prefix = _prefix_tokens(p, tokenizer_path)
            one = estimate(prompt_tokens(p, tokenizer_path=tokenizer_path), p.output_tokens(thinking),
                           cached_tokens=cached_prefix, rates=rates, cache_source="assumed")
        elif p.prefix in seen:
            n = prompt_tokens(p, tokenizer_path=tokenizer_path)
            prefix = _prefix_tokens(p, tokenizer_path)
            block = 1 if deepseek else rates.cache_block_tokens  # DeepSeek caches up to the warm-up's end exactly
            one = estimate(n, p.output_tokens(thinking), cached_tokens=prefix // block * block, rates=rates,
                           cache_source="assumed")
        else:
            one = estimate_prompt(p, client=client, rates=rates, thinking=thinking, tokenizer_path=tokenizer_path,
                                  cache_salt=cache_salt)
            seen.add(p.prefix)
        requests += 1
        sources.add(one.cache_source)
        total, cached = total + one.prompt_tokens, cached + one.cached_tokens
        out_cap, expected = out_cap + one.max_output_tokens, expected + one.expected_output_tokens
        prefill_s, decode_s = prefill_s + one.prefill_seconds, decode_s + one.decode_seconds
    source = "probe" if "probe" in sources else ("assumed" if "assumed" in sources else "cold")
    cost = None
    if prompts and rates.input_price is not None and rates.output_price is not None:
        cost = estimate(total, out_cap, cached_tokens=cached, rates=rates).cost
    return Estimate(requests, total, cached, out_cap, expected, prefill_s, decode_s, source, cost)


def _prefix_tokens(p: Prompt, tokenizer_path: str | None) -> int:
    """Tokens of the stable prefix as the chat encoding renders it: BOS + system + <｜User｜> + the document block."""
    return CHAT_OVERHEAD - 2 + count_tokens(p.system, tokenizer_path=tokenizer_path) + count_tokens(
        p.document, tokenizer_path=tokenizer_path)
