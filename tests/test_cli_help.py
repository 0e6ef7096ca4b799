"""Every command-line argument of our packages says what it is: each `add_argument(...)` call in kernels, inference,
pipeline, workers and api passes `help=` (argparse.SUPPRESS for a hidden one), so `--help` of every entry point and
benchmark explains all of its options. Checked by parsing the sources, so no entry point has to be imported."""

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("kernels", "inference", "pipeline", "workers", "api")


def _arguments_without_help() -> list[str]:
    missing = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            for node in ast.walk(tree):
                if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                        and node.func.attr == "add_argument"):
                    continue
                if any(k.arg == "help" or k.arg is None for k in node.keywords):  # None: **options passes it on
                    continue
                name = ast.unparse(node.args[0]) if node.args else "?"
                missing.append(f"{path.relative_to(ROOT)}:{node.lineno} {name}")
    return missing


def test_every_argument_has_help_text():
    missing = _arguments_without_help()
    assert not missing, "arguments without help= (say what each one is):\n" + "\n".join(missing)


def test_the_check_sees_a_missing_help(tmp_path, monkeypatch):
    """The scan itself: a parser module with one helped and one bare argument reports only the bare one."""
    pkg = tmp_path / "kernels"
    pkg.mkdir()
    (pkg / "entry.py").write_text("import argparse\np = argparse.ArgumentParser()\n"
                                  "p.add_argument('--a', help='an a')\np.add_argument('--b', type=int)\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    assert _arguments_without_help() == ["kernels/entry.py:4 '--b'"]
