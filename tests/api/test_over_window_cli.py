"""The command line and a document over the window, without services (docs/over-window.md): `wholedoc ingest` says
so with the counts and the way out, and the embedded inference server is started with WHOLEDOC_MAX_MODEL_LEN."""

import json
import os
import subprocess
import sys

import pymupdf

from api.cli.stack import inference_argv
from tests.helpers.long_pdf import long_pdf


def _text(pdf: bytes) -> str:
    """The PDF's text as pymupdf reads it, for a token range derived without the product's tokenizer."""
    with pymupdf.open(stream=pdf) as doc:
        return "".join(page.get_text() for page in doc)


def _ingest(tmp_path, *args: str, window: str | None) -> subprocess.CompletedProcess:
    pdf = tmp_path / "long.pdf"
    pdf.write_bytes(long_pdf(40))
    env = {k: v for k, v in os.environ.items() if not k.startswith("WHOLEDOC_")} | {"WHOLEDOC_HOME": str(tmp_path)}
    if window:
        env["WHOLEDOC_MAX_MODEL_LEN"] = window
    return subprocess.run([sys.executable, "-m", "api.cli", "ingest", str(pdf), "--no-isolation", *args], env=env,
                          capture_output=True, text=True, timeout=120)


def test_ingest_says_when_a_document_is_over_the_window(tmp_path):
    r = _ingest(tmp_path, window="4096")
    assert r.returncode == 0, r.stderr
    [line] = [x for x in r.stdout.splitlines() if "over the model's window" in x]
    tokens = int(r.stdout.split(" tokens,")[0].rsplit(" ", 1)[1])
    # a BPE tokenizer gives at least one token per word and no more than one per two characters on this English
    # prose with numbers (about 5,500 words, 30,000 characters): the count is the document's, and over the window
    text = _text((tmp_path / "long.pdf").read_bytes())
    assert 4096 < len(text.split()) <= tokens <= len(text) // 2, (tokens, len(text.split()), len(text))
    assert f"the document is {tokens:,} tokens" in line and "the window is 4,096" in line
    assert "--over-window sections" in line


def test_ingest_json_says_nothing_of_the_window_when_the_document_fits(tmp_path):
    r = _ingest(tmp_path, "--json", window=None)  # V4's 1,048,576
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["over_window"] is None and out["tokens"] > 4096


def test_the_embedded_inference_server_gets_the_configured_window():
    argv = inference_argv("/ckpt", 8123, 4096)
    assert argv[1:3] == ["-m", "inference.serve"] and argv[argv.index("--max-model-len") + 1] == "4096"
    assert "--max-model-len" not in inference_argv("/ckpt", 8123, None)  # the checkpoint's own window
