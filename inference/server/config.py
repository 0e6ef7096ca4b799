"""Server options that are not the engine's: the served model name, defaults for fields a request omits."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """How the HTTP layer fills in what a request leaves out, and how chatty streams are while prefilling."""

    model_name: str = "wholedoc"  # the id in GET /v1/models; requests naming another model get 404
    default_thinking: bool = False  # OpenAI route, when the request has no `thinking` field (Anthropic: off)
    default_max_tokens: int = 4096  # when a request gives no max_tokens (capped by the remaining window)
    progress_interval_s: float = 1.0  # at most one `: progress` comment per request this often (plus the first)
    keepalive_s: float = 15.0  # an SSE comment after this long without any event, so proxies keep the stream

    def __post_init__(self):
        assert self.model_name, "model_name must not be empty"
        assert self.default_max_tokens >= 1, f"default_max_tokens must be >= 1, got {self.default_max_tokens}"
        assert self.progress_interval_s >= 0 and self.keepalive_s > 0, "intervals must be positive"
