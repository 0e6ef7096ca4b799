"""Make untrusted document text safe to embed: strip invisible Unicode, neutralise delimiters and control tokens.

Every transformation is deterministic, so the same document always gives byte-identical prompt text.
"""

from __future__ import annotations

import re
from functools import lru_cache

from pipeline.tokens import added_token_strings

# OWASP LLM01 (5): zero-width U+200B–D, word joiner U+2060–4, BOM, bidi controls (U+200E/F, U+202A–E, U+2066–9,
# U+061C), soft hyphen, variation selectors U+FE00–F and U+E0100–EF, the tag block U+E0000–7F, and C0/C1 controls
# other than tab, newline and carriage return.
INVISIBLE = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u00ad\u061c\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069"
    "\ufe00-\ufe0f\ufeff\U000e0000-\U000e007f\U000e0100-\U000e01ef]"
)
# An opening or closing <document>/<documents> tag inside the data would end (or fake) our delimiter.
DELIMITER = re.compile(r"<(\s*/?\s*documents?\b)", re.IGNORECASE)


def strip_invisible(text: str) -> str:
    """Remove invisible and control characters; normal whitespace (space, tab, newlines) is kept."""
    return INVISIBLE.sub("", text)


@lru_cache(maxsize=4)
def _control_tokens(tokenizer_path: str | None) -> re.Pattern[str]:
    return re.compile("|".join(re.escape(t) for t in added_token_strings(tokenizer_path)))


def _defuse(match: re.Match[str]) -> str:
    token = match.group(0)
    # "<｜User｜>" -> "&lt;｜User｜>", "｜DSML｜" -> "|DSML｜": visible to a reader, no longer a control id
    return "&lt;" + token[1:] if token.startswith("<") else "|" + token[1:]


def neutralise(text: str, *, tokenizer_path: str | None = None) -> str:
    """Defuse our own delimiter tags and the model's control tokens (e.g. `<｜User｜>`, `</think>`) inside data."""
    text = DELIMITER.sub(r"&lt;\1", text)
    return _control_tokens(tokenizer_path).sub(_defuse, text)


def sanitize(text: str, *, tokenizer_path: str | None = None) -> str:
    """strip_invisible, then neutralise: what every document and question goes through before a prompt."""
    return neutralise(strip_invisible(text), tokenizer_path=tokenizer_path)
