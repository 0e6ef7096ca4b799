"""Every API benchmark module imports and answers --help (they run by hand, so an import broken by a refactor
would otherwise go unseen until someone runs one)."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BENCHES = sorted(f"api.{p.stem}" for p in (ROOT / "api").glob("bench_*.py"))


def test_the_benches_are_found():
    assert {"api.bench_batch", "api.bench_corpus", "api.bench_load", "api.bench_overhead"} <= set(BENCHES)


@pytest.mark.parametrize("module", BENCHES)
def test_bench_module_answers_help(module):
    r = subprocess.run([sys.executable, "-m", module, "--help"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("usage:"), r.stdout
