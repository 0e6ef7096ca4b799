"""Splitting streamed model text into reasoning and content, as chat.parse_output does for a whole completion."""

from __future__ import annotations

from inference.text.chat import END_THINK, EOS, THINK


def _held_suffix(text: str, marker: str) -> int:
    """Length of the longest end of `text` that could be the start of `marker` (wait for the next delta)."""
    for n in range(min(len(marker) - 1, len(text)), 0, -1):
        if marker.startswith(text[-n:]):
            return n
    return 0


class ReasoningSplitter:
    """Routes text deltas: a thinking request starts in reasoning, `</think>` switches to content, EOS text ends it.

    A marker split across two deltas is held back until it is complete, so no delta ever shows part of a tag.
    """

    def __init__(self, *, thinking: bool):
        self.in_reasoning = thinking
        self._fresh = thinking  # a leading <think> (if the model repeats it) is dropped, as parse_output does
        self._held = ""
        self._ended = False

    def feed(self, text: str) -> list[tuple[str, str]]:
        """The (kind, text) pieces to emit for one delta; kind is "reasoning" or "content"."""
        text, self._held = self._held + text, ""
        out: list[tuple[str, str]] = []
        while text and not self._ended:
            if self._fresh:
                if THINK.startswith(text) and len(text) < len(THINK):
                    self._held = text
                    return out
                self._fresh = False
                text = text.removeprefix(THINK)
                continue
            marker = END_THINK if self.in_reasoning else EOS
            head, sep, tail = text.partition(marker)
            if sep:
                self._emit(out, head)
                if self.in_reasoning:
                    self.in_reasoning = False
                else:
                    self._ended = True
                text = tail
                continue
            keep = _held_suffix(text, marker)
            self._emit(out, text[: len(text) - keep])
            self._held = text[len(text) - keep:]
            break
        return out

    def flush(self) -> list[tuple[str, str]]:
        """What was held back, at the end of the stream (a partial marker is plain text after all)."""
        held, self._held = self._held, ""
        out: list[tuple[str, str]] = []
        if not self._ended:
            self._emit(out, held)
        return out

    def _emit(self, out: list[tuple[str, str]], text: str) -> None:
        if text:
            out.append(("reasoning" if self.in_reasoning else "content", text))
