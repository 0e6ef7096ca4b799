"""Incremental, UTF-8-safe detokenization with stop strings held back until they can no longer match."""

from tokenizers import Tokenizer


class Detokenizer:
    """Feeds token ids, returns text deltas; finds stop strings in the decoded text (the stop string is dropped)."""

    def __init__(self, tokenizer: Tokenizer | None, stop: tuple[str, ...] = ()):
        self.tok, self.stop = tokenizer, stop
        self.ids: list[int] = []
        self.prefix_offset = self.read_offset = 0
        self.text = ""  # decoded text of all ids pushed so far (complete characters only)
        self.emitted = 0  # characters of text already returned

    def push(self, ids: list[int]) -> tuple[str, bool]:
        """Add token ids; returns (new text, whether a stop string was hit)."""
        self.ids += ids
        if self.tok is None:
            return "", False
        prefix = self.tok.decode(self.ids[self.prefix_offset : self.read_offset], skip_special_tokens=False)
        full = self.tok.decode(self.ids[self.prefix_offset :], skip_special_tokens=False)
        if len(full) > len(prefix) and not full.endswith("\ufffd"):  # no half UTF-8 character at the end
            self.text += full[len(prefix) :]
            self.prefix_offset, self.read_offset = self.read_offset, len(self.ids)
        if not self.stop:
            return self._emit(len(self.text)), False
        longest = max(len(s) for s in self.stop)
        start = max(0, self.emitted - longest)
        hits = [i for i in (self.text.find(s, start) for s in self.stop) if i >= 0]
        if hits:
            return self._emit(min(hits)), True
        hold = max((k for s in self.stop for k in range(1, len(s)) if self.text.endswith(s[:k])), default=0)
        return self._emit(len(self.text) - hold), False

    def flush(self) -> str:
        """The held-back tail, when the request ends for another reason."""
        return self._emit(len(self.text))

    def _emit(self, upto: int) -> str:
        upto = max(upto, self.emitted)
        out = self.text[self.emitted : upto]
        self.emitted = upto
        return out
