"""`wholedoc pack` run as a real subprocess (`python -m api.cli pack …`), with no services."""

import json
import subprocess
import sys
from pathlib import Path

from pipeline.codebase import pack_codebase

ROOT = Path(__file__).resolve().parents[2]


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "api.cli", "pack", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)


def make(root: Path) -> Path:
    (root / "src").mkdir(parents=True)
    (root / "src" / "a.py").write_text("print('a')\n")
    (root / "README.md").write_text("# r\n")
    (root / "poetry.lock").write_text("lock\n")
    return root


def test_pack_writes_the_packed_text_and_a_summary(tmp_path):
    root = make(tmp_path / "proj")
    out = tmp_path / "out.txt"
    r = cli(str(root), "-o", str(out))
    assert r.returncode == 0, r.stderr
    assert out.read_text(encoding="utf-8") == pack_codebase(root).text
    assert "packed 2 files" in r.stdout and "ignored by default: 1" in r.stdout


def test_pack_to_stdout_with_line_numbers_and_json(tmp_path):
    root = make(tmp_path / "proj")
    r = cli(str(root), "--line-numbers", "--json", "--show-skipped")
    assert r.returncode == 0, r.stderr
    assert r.stdout == pack_codebase(root, line_numbers=True).text
    summary = json.loads(r.stderr.strip().splitlines()[-1])
    assert summary["file_count"] == 2 and summary["files"] == ["README.md", "src/a.py"]
    reason = "ignored by default: 'poetry.lock' in default ignores"
    assert summary["skipped"] == [{"path": "poetry.lock", "reason": reason}]


def test_pack_errors_are_clear_with_exit_code_2(tmp_path):
    r = cli(str(tmp_path / "missing"), "-o", str(tmp_path / "o.txt"))
    assert r.returncode == 2
    assert "IngestError" in r.stderr and "does not exist" in r.stderr
    assert not (tmp_path / "o.txt").exists()
    (tmp_path / "empty").mkdir()
    r = cli(str(tmp_path / "empty"))
    assert r.returncode == 2 and "EmptyCodebase" in r.stderr


def test_pack_counts_tokens_with_the_v4_tokenizer(tmp_path):
    from pipeline.tokens import load_tokenizer

    root = make(tmp_path / "proj")
    (root / "src" / "big.py").write_text("def f(x):\n    return x * 2\n" * 50)
    r = cli(str(root), "-o", str(tmp_path / "o.txt"), "--tokens", "--json")
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout.strip().splitlines()[-1])
    tok = load_tokenizer()
    text = (tmp_path / "o.txt").read_text(encoding="utf-8")
    assert summary["tokens"] == len(tok.encode(text, add_special_tokens=False).ids)
    assert summary["largest_files"][0]["path"] == "src/big.py"
    assert [f["path"] for f in summary["largest_files"]] == ["src/big.py", "src/a.py", "README.md"]
