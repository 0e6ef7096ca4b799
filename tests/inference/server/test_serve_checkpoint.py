"""The server loads its tokenizer with the one checking loader: a checkpoint whose tokenizer.json gives V4's control
tokens other ids is refused before serving, with a message naming the file (the model would otherwise see wrong
tokens silently)."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from inference.engine import Engine
from inference.text.tokenizer import TokenizerError

ROOT = Path(__file__).resolve().parents[3]


def _with_wrong_special_ids(src: Path, dst: Path) -> Path:
    """A copy of checkpoint src whose tokenizer.json maps `<think>` to another string (so its id is not 128821)."""
    shutil.copytree(src, dst)
    data = json.loads((dst / "tokenizer.json").read_text(encoding="utf-8"))
    for added in data["added_tokens"]:
        if added["content"] == "<think>":
            added["content"] = "<thinking>"
    (dst / "tokenizer.json").write_text(json.dumps(data), encoding="utf-8")
    return dst


def test_engine_refuses_a_checkpoint_whose_tokenizer_has_wrong_special_ids(tiny_checkpoint, tmp_path):
    bad = _with_wrong_special_ids(tiny_checkpoint, tmp_path / "bad")
    with pytest.raises(TokenizerError, match="not the DeepSeek-V4 tokenizer"):
        Engine.from_checkpoint(bad)


def test_serve_exits_with_the_reason_instead_of_serving(tiny_checkpoint, tmp_path):
    bad = _with_wrong_special_ids(tiny_checkpoint, tmp_path / "bad")
    proc = subprocess.run([sys.executable, "-m", "inference.serve", "--checkpoint", str(bad), "--port", "9"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "cannot serve" in proc.stderr and "not the DeepSeek-V4 tokenizer" in proc.stderr
    assert str(bad / "tokenizer.json") in proc.stderr
    assert "serving" not in proc.stdout
