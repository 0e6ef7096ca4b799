"""`wholedoc --help` (and each command's help, and --version) on a bare install: no third-party package importable,
as after `pip install wholedoc` with no extras. Regression: the parser imported SQLAlchemy, pydantic and tokenizers."""

import importlib.metadata
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Refuse every import that is neither the standard library nor ours, then run the command line.
BARE = """
import importlib.abc, sys
class Bare(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        top = name.split(".")[0]
        if top in sys.stdlib_module_names or top.startswith("_") or top in {"api", "pipeline", "workers"}:
            return None
        raise ImportError(f"not installed: {name}")
sys.meta_path.insert(0, Bare())
from api.cli.main import main
sys.exit(main(sys.argv[1:]))
"""
COMMANDS = ["admin", "ask", "cancel", "config", "documents", "ingest", "jobs", "pack", "result", "sample", "serve",
            "summarize"]


def _bare(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", BARE, *args], cwd=ROOT, capture_output=True, text=True, timeout=60)


def test_help_lists_every_command_without_any_third_party_package():
    r = _bare("--help")
    assert r.returncode == 0, r.stderr
    for name in COMMANDS:
        assert name in r.stdout


@pytest.mark.parametrize("command", COMMANDS)
def test_each_commands_help_without_any_third_party_package(command):
    r = _bare(command, "--help")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(f"usage: wholedoc {command}")


def test_version():
    r = _bare("--version")
    assert (r.returncode, r.stdout.strip()) == (0, f"wholedoc {importlib.metadata.version('wholedoc')}")


def _cli(tmp_path, *args: str, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("WHOLEDOC_")}
    return subprocess.run([sys.executable, "-m", "api.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=60, env={**clean, "WHOLEDOC_HOME": str(tmp_path / "home"), **env})


def test_an_unreachable_api_is_one_line_and_exit_1(tmp_path):
    """Regression: a refused connection printed httpx's traceback (and exited 1 only by accident)."""
    (tmp_path / "doc.pdf").write_bytes(b"%PDF-1.4\n")
    r = _cli(tmp_path, "summarize", str(tmp_path / "doc.pdf"), WHOLEDOC_API_URL="http://127.0.0.1:9",
             WHOLEDOC_API_KEY="wd_000000000000_x")
    assert r.returncode == 1
    assert "Traceback" not in r.stderr
    assert "cannot reach the wholedoc API" in r.stderr and "WHOLEDOC_API_URL" in r.stderr


def test_a_missing_file_is_one_line_and_exit_1(tmp_path):
    r = _cli(tmp_path, "ask", str(tmp_path / "nope.pdf"), "Why?")
    assert (r.returncode, r.stdout) == (1, "")
    missing = tmp_path / "nope.pdf"
    assert r.stderr.strip() == (f"error: {missing}: no such file (give the path of a PDF or a codebase archive, "
                                "or a document id)")


def test_every_argument_has_help_text():
    """`wholedoc CMD --help` explains each argument: none is listed bare."""
    import argparse

    from api.cli.main import build_parser

    def walk(parser: argparse.ArgumentParser, path: str):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    yield from walk(sub, f"{path} {name}")
            elif not isinstance(action, argparse._HelpAction | argparse._VersionAction):
                yield path, action

    bare = [f"{path}: {'/'.join(a.option_strings) or a.dest}" for path, a in walk(build_parser(), "wholedoc")
            if not a.help]
    assert bare == []
