"""Token usage as endpoints report it, in OpenAI's and DeepSeek's spellings."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Usage:
    """Tokens of one completion; `cached_tokens` is None when the endpoint did not say (not the same as 0)."""

    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int | None = None
    reasoning_tokens: int | None = None

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    @property
    def computed_prompt_tokens(self) -> int:
        """Prompt tokens that were prefilled rather than served from the prefix cache."""
        return self.prompt_tokens - (self.cached_tokens or 0)


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def parse_usage(raw: object) -> Usage | None:
    """Read a `usage` object: OpenAI `prompt_tokens_details.cached_tokens` or DeepSeek `prompt_cache_hit_tokens`
    (+ `prompt_cache_miss_tokens`); reasoning from `completion_tokens_details.reasoning_tokens`. None if absent."""
    if not isinstance(raw, dict):
        return None
    details = raw.get("prompt_tokens_details") if isinstance(raw.get("prompt_tokens_details"), dict) else {}
    cached = _int(details.get("cached_tokens"))
    hit, miss = _int(raw.get("prompt_cache_hit_tokens")), _int(raw.get("prompt_cache_miss_tokens"))
    if cached is None:
        cached = hit
    prompt = _int(raw.get("prompt_tokens"))
    if prompt is None and hit is not None and miss is not None:
        prompt = hit + miss
    completion = _int(raw.get("completion_tokens"))
    if prompt is None and completion is None:
        return None
    out_details = raw.get("completion_tokens_details")
    reasoning = _int(out_details.get("reasoning_tokens")) if isinstance(out_details, dict) else None
    return Usage(prompt or 0, completion or 0, cached, reasoning)
