"""Request bodies of the OpenAI, Anthropic and wholedoc endpoints (unknown fields are accepted and ignored)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Body(BaseModel):
    model_config = ConfigDict(extra="allow")


# vLLM's per-request prefix-cache isolation: requests hit only cache blocks written under the same salt
CacheSalt = Annotated[str | None, Field(min_length=1, max_length=256)]
# wholedoc's: stored prefix snapshots of this request carry the tag; DELETE /v1/prefixes?tag=… removes them
PrefixTag = Annotated[str | None, Field(min_length=1, max_length=256)]


class Thinking(_Body):
    """DeepSeek's / Anthropic's toggle: `{"type": "enabled"|"disabled"}`; Anthropic's budget_tokens caps the
    reasoning: after that many tokens the thinking block is closed and the model answers."""

    type: Literal["enabled", "disabled", "adaptive"]
    budget_tokens: int | None = Field(None, ge=0)

    def budget(self) -> int | None:
        """The reasoning token cap when thinking is on, else None."""
        return self.budget_tokens if self.type != "disabled" else None


class StreamOptions(_Body):
    include_usage: bool = False


class ChatCompletionRequest(_Body):
    """POST /v1/chat/completions."""

    model: str
    messages: list[dict[str, Any]] = Field(min_length=1)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0.0, le=2.0)
    top_p: float | None = Field(None, gt=0.0, le=1.0)
    stop: str | list[str] | None = None
    seed: int | None = None
    n: int = Field(1, ge=1, le=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    thinking: Thinking | None = None
    reasoning_effort: str | None = None
    ignore_eos: bool = False  # vLLM's extension: benchmarks with fixed output lengths
    cache_salt: CacheSalt = None
    prefix_tag: PrefixTag = None


class AnthropicMessagesRequest(_Body):
    """POST /v1/messages."""

    model: str
    messages: list[dict[str, Any]] = Field(min_length=1)
    max_tokens: int = Field(ge=1)
    system: str | list[dict[str, Any]] | None = None
    temperature: float | None = Field(None, ge=0.0, le=1.0)
    top_p: float | None = Field(None, gt=0.0, le=1.0)
    stop_sequences: list[str] | None = None
    stream: bool = False
    thinking: Thinking | None = None
    output_config: dict[str, Any] | None = None  # DeepSeek: output_config.effort
    cache_salt: CacheSalt = None
    prefix_tag: PrefixTag = None


class CacheProbeRequest(_Body):
    """POST /v1/cache/probe: messages (encoded as a chat request would be) or raw token ids."""

    model: str | None = None
    messages: list[dict[str, Any]] | None = None
    prompt_token_ids: list[int] | None = None
    thinking: Thinking | None = None
    reasoning_effort: str | None = None
    cache_salt: CacheSalt = None


class TokenizeRequest(_Body):
    """POST /v1/tokenize: messages (chat encoding applied) or a raw prompt string."""

    model: str | None = None
    messages: list[dict[str, Any]] | None = None
    prompt: str | None = None
    thinking: Thinking | None = None
    reasoning_effort: str | None = None
    return_token_ids: bool = False
