"""DeepSeek-V4 chat encoding (prompt string) and output parsing, as in DeepSeek's `encoding_dsv4.py`.

Pure Python on purpose (no torch): torch-free pipeline tests import it for token-level checks.
The prompt is a plain string; tokenize it with `add_special_tokens=False` (BOS is already in it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

BOS = "<｜begin▁of▁sentence｜>"
EOS = "<｜end▁of▁sentence｜>"
USER = "<｜User｜>"
ASSISTANT = "<｜Assistant｜>"
THINK = "<think>"
END_THINK = "</think>"
LATEST_REMINDER = "<｜latest_reminder｜>"
DSML = "｜DSML｜"
TOOL_CALLS_START = f"\n\n<{DSML}tool_calls"  # how a DSML tool-call block opens in model output
SPECIAL_TOKENS = (BOS, EOS, USER, ASSISTANT, THINK, END_THINK, LATEST_REMINDER, DSML)

# Prepended (before the first message) in thinking mode with reasoning_effort="max"; "high" and None add nothing.
REASONING_EFFORT_MAX = (
    "Reasoning Effort: Absolute maximum with no shortcuts permitted.\n"
    "You MUST be very thorough in your thinking and comprehensively decompose the problem to resolve the root cause, "
    "rigorously stress-testing your logic against all potential paths, edge cases, and adversarial scenarios.\n"
    "Explicitly write out your entire deliberation process, documenting every intermediate step, considered "
    "alternative, and rejected hypothesis to ensure absolutely no assumption is left unchecked.\n\n"
)
REASONING_EFFORTS = (None, "high", "max")
ROLES = ("system", "user", "assistant")


class ChatFormatError(ValueError):
    """A message list or option the V4 chat format cannot encode; the message says what to change."""


@dataclass(frozen=True)
class ParsedOutput:
    """One assistant completion split into its parts.

    `reasoning_content` is None when thinking is off; `tool_calls_text` is the raw DSML block, if the model wrote one.
    """

    reasoning_content: str | None
    content: str
    tool_calls_text: str | None = None


def encode_messages(
    messages: Sequence[dict],
    *,
    thinking: bool = False,
    reasoning_effort: str | None = None,
    add_generation_prompt: bool = True,
) -> str:
    """Render OpenAI-style messages (system/user/assistant, str content) as a V4 prompt string starting with BOS.

    In thinking mode the reasoning of assistant turns before the last user message is dropped. The generation
    prompt (`<｜Assistant｜>` + `<think>` or `</think>`) follows a trailing user message when add_generation_prompt.
    Content is inserted verbatim: check untrusted text with `special_tokens_in` first if that matters.
    """
    if reasoning_effort not in REASONING_EFFORTS:
        raise ChatFormatError(f"reasoning_effort must be one of {REASONING_EFFORTS}, got {reasoning_effort!r}")
    _validate(messages)
    last_user = max((i for i, m in enumerate(messages) if m["role"] == "user"), default=-1)
    parts = [BOS]
    if thinking and reasoning_effort == "max":
        parts.append(REASONING_EFFORT_MAX)
    for i, msg in enumerate(messages):
        role, content = msg["role"], msg.get("content") or ""
        if role == "system":
            parts.append(content)
        elif role == "user":
            parts.append(USER + content)
            nxt = messages[i + 1]["role"] if i + 1 < len(messages) else None
            if nxt == "assistant" or (nxt is None and add_generation_prompt):
                # NOTE: only the last user turn opens a fresh <think>; earlier turns show their answer only
                parts.append(ASSISTANT + (THINK if thinking and i == last_user else END_THINK))
        else:  # assistant
            reasoning = ""
            if thinking and i > last_user:
                # the turn being continued after the last question keeps its reasoning (history drops it)
                reasoning = (msg.get("reasoning_content") or "") + END_THINK
            parts.append(reasoning + content + EOS)
    return "".join(parts)


def parse_output(text: str, *, thinking: bool) -> ParsedOutput:
    """Split generated text (the part after the prompt) into reasoning and content.

    Thinking mode: text up to `</think>` is reasoning (all of it if `</think>` never came: truncated output).
    Content runs to EOS, a DSML tool-call block, or the end of the text.
    """
    reasoning = None
    rest = text
    if thinking:
        if rest.startswith(THINK):
            rest = rest[len(THINK):]
        head, sep, tail = rest.partition(END_THINK)
        reasoning, rest = head, (tail if sep else "")
    content, _, _ = rest.partition(EOS)
    tool_calls_text = None
    cut = content.find(TOOL_CALLS_START)
    if cut >= 0:
        content, tool_calls_text = content[:cut], content[cut + 2:]
    return ParsedOutput(reasoning_content=reasoning, content=content, tool_calls_text=tool_calls_text)


def special_tokens_in(text: str) -> list[str]:
    """The special-token strings that occur in text (a tokenizer turns them into control ids, not plain text)."""
    return [tok for tok in SPECIAL_TOKENS if tok in text]


def _validate(messages: Sequence[dict]) -> None:
    """Reject what V4's format cannot express, naming the offending message."""
    if not messages:
        raise ChatFormatError("messages is empty: give at least one user message")
    for i, msg in enumerate(messages):
        if not isinstance(msg, dict):
            raise ChatFormatError(f"messages[{i}] must be a dict with 'role' and 'content', got {type(msg).__name__}")
        role = msg.get("role")
        if role not in ROLES:
            raise ChatFormatError(f"messages[{i}].role must be one of {ROLES}, got {role!r}")
        for key in ("content", "reasoning_content"):
            value = msg.get(key)
            if value is not None and not isinstance(value, str):
                raise ChatFormatError(
                    f"messages[{i}].{key} must be a string, got {type(value).__name__} (join content parts first)"
                )
        if msg.get("tools") or msg.get("tool_calls"):
            raise ChatFormatError(f"messages[{i}]: tools and tool_calls are not supported by this encoder")
        if role == "system" and i > 0 and messages[i - 1]["role"] != "system":
            raise ChatFormatError(f"messages[{i}]: a system message must come before all user/assistant messages")
        if role == "assistant" and (i == 0 or messages[i - 1]["role"] != "user"):
            raise ChatFormatError(f"messages[{i}]: an assistant message must follow a user message")
