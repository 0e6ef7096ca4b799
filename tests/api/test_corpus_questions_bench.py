"""`python -m api.bench_corpus --quick` on the tiny checkpoint: runs end to end, and document-id order keeps its floor
(at least as good as relevance order on every question set, better overall) on the real engine's prefix cache."""

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow


def test_bench_corpus_quick_meets_its_floor(tiny_checkpoint):
    r = subprocess.run([sys.executable, "-m", "api.bench_corpus", "--quick", "--checkpoint", str(tiny_checkpoint)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["floor_met"] and out["documents"] >= 20 and out["questions"] == 4
    assert out["stable_cached_share"] > out["relevance_cached_share"]
    assert min(out["documents_per_prompt"]) >= 2  # the window held several whole documents, not the whole corpus
