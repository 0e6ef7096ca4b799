"""From API messages to prompt token ids: content parts joined, roles normalised, the V4 chat encoding applied."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tokenizers import Tokenizer

from inference.server.errors import BadRequest
from inference.text.chat import encode_messages

# DeepSeek's mapping of effort names onto V4's two renderings (api-docs thinking_mode): None/high render alike
EFFORTS = {"none": None, "minimal": "high", "low": "high", "medium": "high", "high": "high", "xhigh": "high",
           "max": "max", "ultra": "max"}


def reasoning_effort(value: str | None) -> str | None:
    """An API effort name as chat.encode_messages takes it; BadRequest on names nobody uses."""
    if value is None:
        return None
    if value not in EFFORTS:
        raise BadRequest(f"reasoning_effort must be one of {sorted(EFFORTS)}, got {value!r}", param="reasoning_effort")
    return EFFORTS[value]


def text_of(content: Any, where: str) -> str:
    """Message content as one string: a string, or a list of text parts (OpenAI / Anthropic blocks)."""
    if content is None or isinstance(content, str):
        return content or ""
    if isinstance(content, list):
        texts = []
        for i, part in enumerate(content):
            if not isinstance(part, dict) or part.get("type") not in ("text", "input_text"):
                kind = part.get("type") if isinstance(part, dict) else type(part).__name__
                raise BadRequest(f"{where}[{i}]: only text parts are supported, got {kind!r}", param=where)
            texts.append(str(part.get("text") or ""))
        return "".join(texts)
    raise BadRequest(f"{where} must be a string or a list of text parts, got {type(content).__name__}", param=where)


def openai_messages(messages: Sequence[dict]) -> list[dict]:
    """OpenAI messages for chat.encode_messages: text only, `developer` read as `system`."""
    out = []
    for i, m in enumerate(messages):
        role = "system" if m.get("role") == "developer" else m.get("role")
        msg = {"role": role, "content": text_of(m.get("content"), f"messages[{i}].content")}
        if m.get("reasoning_content") is not None:
            msg["reasoning_content"] = m["reasoning_content"]
        if m.get("tool_calls") or role == "tool":
            raise BadRequest(f"messages[{i}]: tool calls are not supported by this server", param="messages")
        out.append(msg)
    return out


def anthropic_messages(system: str | list | None, messages: Sequence[dict]) -> list[dict]:
    """Anthropic `system` + messages as OpenAI-style messages; thinking blocks become reasoning_content."""
    out = []
    if system:
        out.append({"role": "system", "content": text_of(system, "system")})
    for i, m in enumerate(messages):
        content, reasoning = m.get("content"), None
        if isinstance(content, list):
            reasoning = "".join(str(b.get("thinking") or "") for b in content
                                if isinstance(b, dict) and b.get("type") == "thinking") or None
            content = [b for b in content if not (isinstance(b, dict)
                                                  and b.get("type") in ("thinking", "redacted_thinking"))]
        msg = {"role": m.get("role"), "content": text_of(content, f"messages[{i}].content")}
        if reasoning is not None:
            msg["reasoning_content"] = reasoning
        out.append(msg)
    return out


def encode(tokenizer: Tokenizer, messages: list[dict], *, thinking: bool, effort: str | None) -> list[int]:
    """Token ids of the V4 prompt (BOS included, generation prompt appended)."""
    text = encode_messages(messages, thinking=thinking, reasoning_effort=effort if thinking else None)
    return tokenizer.encode(text, add_special_tokens=False).ids
