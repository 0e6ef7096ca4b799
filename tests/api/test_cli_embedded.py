"""Embedded mode end to end, with nothing but a checkpoint configured: `wholedoc summarize FILE` starts SQLite,
a local blob folder, kombu's SQLAlchemy broker, a worker, beat, uvicorn and the real inference server on the
`tiny` random-weight checkpoint, prints a result, and stops every process it started."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from api.cli.commands.sample import write_sample

pytestmark = [pytest.mark.services, pytest.mark.slow]


def _children_of_home(home) -> list[str]:
    """Command lines of live processes whose environment names this WHOLEDOC_HOME (read from /proc)."""
    found, marker = [], f"WHOLEDOC_HOME={home}".encode()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if marker in (proc / "environ").read_bytes().split(b"\0"):
                found.append((proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"))
        except OSError:
            pass
    return found


def test_embedded_summarize_on_the_tiny_checkpoint(tiny_checkpoint, tmp_path):
    pdf = tmp_path / "sample.pdf"
    write_sample(str(pdf))  # the README's first steps: `wholedoc sample sample.pdf`, summarize, then ask
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("WHOLEDOC_")}
    env |= {"WHOLEDOC_HOME": str(home), "WHOLEDOC_CHECKPOINT": str(tiny_checkpoint)}
    r = subprocess.run([sys.executable, "-m", "api.cli", "summarize", str(pdf), "--max-tokens", "24"], env=env,
                       capture_output=True, text=True, timeout=240)
    assert r.returncode == 0, r.stderr + "\n".join(p.read_text()[-2000:] for p in (home / "logs").glob("*.log"))
    assert r.stdout.strip(), "no summary text printed"
    assert "sample.pdf: pdf, 4 pages, " in r.stderr, r.stderr  # pages, as `wholedoc ingest` says (not "sections")
    completion = re.search(r"(\d+) completion tokens", r.stderr)
    assert completion and 0 < int(completion.group(1)) <= 24, r.stderr  # the cap reached the inference server
    assert (home / "wholedoc.sqlite").exists() and (home / "broker.sqlite").exists()
    assert any((home / "blobs").rglob("*")), "the upload was not kept in the local blob folder"
    assert _children_of_home(home) == [], "embedded processes were left running"

    # the README's next step: a question in a new embedded process restores the document prefix the summary stored
    # (docs/prefix-store.md), to the last whole block before the two prompts part; nothing of it is recomputed. The
    # sample's prompts part in block 3 and the summary's last whole block is 4: without the snapshot's tail window
    # states that was a partial restore of 3 blocks, all recomputed (one per layer): "0 cached"
    question = "What was 2025 revenue?"
    r = subprocess.run([sys.executable, "-m", "api.cli", "ask", str(pdf), question, "--max-tokens", "8"], env=env,
                       capture_output=True, text=True, timeout=240)
    assert r.returncode == 0, r.stderr + "\n".join(p.read_text()[-2000:] for p in (home / "logs").glob("*.log"))
    usage = re.search(r"(\d+) prompt tokens \((\d+) cached\)", r.stderr)
    summary, ask = _prompt_ids(pdf, tiny_checkpoint)
    assert usage and int(usage.group(1)) == len(ask), r.stderr
    shared = next(i for i, (a, b) in enumerate(zip(summary, ask)) if a != b)
    assert shared >= 256 and len(summary) - shared <= 512  # two whole shared blocks, parting in the summary's tail
    assert int(usage.group(2)) == shared // 128 * 128, r.stderr
    assert _children_of_home(home) == [], "embedded processes were left running"


def _prompt_ids(pdf, checkpoint) -> tuple[list[int], list[int]]:
    """The token ids the inference server gets for the brief summary and the question (its chat encoding)."""
    from inference.server.prompt import encode, openai_messages
    from inference.text.tokenizer import load_tokenizer
    from pipeline.ingest import ingest_path
    from pipeline.prompts import question_prompt, summary_prompt

    doc, tok, path = ingest_path(pdf, isolate=False), load_tokenizer(checkpoint), str(checkpoint)
    prompts = summary_prompt(doc, "brief", tokenizer_path=path), question_prompt(doc, "What was 2025 revenue?",
                                                                                   tokenizer_path=path)
    return tuple(encode(tok, openai_messages(p.messages), thinking=False, effort=None) for p in prompts)
