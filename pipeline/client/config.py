"""Client configuration: where the OpenAI-compatible endpoint is, and how long and how often to try."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit


@dataclass(frozen=True)
class ClientConfig:
    """An OpenAI-compatible endpoint (`base_url` ends in /v1, like the OpenAI SDK's) plus timeouts and retries.

    Timeouts are per phase: a 1M-token prefill takes minutes, so the first token gets `first_token_timeout`;
    once anything streams (a token, or a progress / keep-alive comment from wholedoc's server) a gap longer
    than `idle_timeout` also counts as a stall.
    """

    base_url: str
    model: str
    api_key: str | None = None
    connect_timeout: float = 10.0
    first_token_timeout: float = 3600.0
    idle_timeout: float = 120.0
    control_timeout: float = 30.0  # probes, status, DELETE: small requests
    status_poll_interval: float = 2.0  # non-streaming calls with on_progress poll GET /requests/{id} this often
    max_retries: int = 4  # retries after the first attempt, on 429 / 5xx / timeouts / connection errors
    backoff_base: float = 1.0  # seconds; attempt k waits base·2^(k-1), jittered to [½, 1]×, capped at backoff_max
    backoff_max: float = 60.0
    retry_after_max: float = 300.0  # a 429 asking to wait longer than this is raised at once (RateLimited)
    # What the endpoint accepts beyond OpenAI's fields. "extended": wholedoc's own server and vLLM-style servers
    # (`cache_salt`, `thinking.budget_tokens`); "deepseek": DeepSeek's API (its `thinking` toggle only; it keeps its
    # own prefix cache and reports it as `prompt_cache_hit_tokens`); "auto": "deepseek" for a *.deepseek.com host.
    flavor: str = "auto"

    def __post_init__(self):
        if not self.base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must be an http(s) URL, got {self.base_url!r}")
        if not self.model:
            raise ValueError("model must be named")
        if self.max_retries < 0 or self.backoff_base < 0:
            raise ValueError(f"max_retries ({self.max_retries}) and backoff_base ({self.backoff_base}) must be >= 0")
        object.__setattr__(self, "base_url", self.base_url.rstrip("/"))
        if self.flavor not in ("auto", "extended", "deepseek"):
            raise ValueError(f"flavor must be auto, extended or deepseek, got {self.flavor!r}")
        if self.flavor == "auto":
            host = urlsplit(self.base_url).hostname or ""
            deepseek = host == "deepseek.com" or host.endswith(".deepseek.com")
            object.__setattr__(self, "flavor", "deepseek" if deepseek else "extended")

    def url(self, path: str) -> str:
        """`path` relative to base_url, e.g. url("chat/completions")."""
        return f"{self.base_url}/{path.lstrip('/')}"
