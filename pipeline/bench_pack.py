"""Packing speed: `pack_codebase` vs gitingest's `ingest()` on the same local tree, in the same run.

`python -m pipeline.bench_pack [--quick] [--tree DIR]` prints a table, then one JSON line.
gitingest is timed without its tiktoken token estimate (it needs a download; our packer counts no tokens).
Deliberate differences in the file set: we keep `.gitignore`/`.gitattributes`/`.gitmodules` (they tell the model
what is left out) and `bin/`, `pkg/` (Go sources), `env/`, `out/`; we skip symlinks (gitingest lists them),
lock files gitingest keeps (pnpm-lock.yaml, uv.lock, go.sum, composer.lock) and non-UTF-8 text.
"""

import argparse
import importlib.util
import json
import os
import re
import sys
import time

from pipeline.codebase import PackLimits, pack_codebase

MiB = 1024 * 1024
_GI_FILE = re.compile(r"^={48}\nFILE: (.+)\n={48}\n", re.M)
_GI_PLACEHOLDERS = ("[Binary file]", "Error reading file", "Error: Unable to decode")


def default_tree(quick: bool) -> str:
    """An offline source tree: installed transformers (full; stdlib asyncio without it), stdlib email (quick)."""
    stdlib = os.path.dirname(os.__file__)
    if quick:
        return os.path.join(stdlib, "email")
    spec = importlib.util.find_spec("transformers")  # its folder only: never imported (pipeline has no torch)
    if spec and spec.origin:
        return os.path.dirname(spec.origin)
    return os.path.join(stdlib, "asyncio")


def _gitingest(tree: str, max_file: int) -> tuple[float, set[str], int]:
    os.environ.setdefault("LOG_LEVEL", "ERROR")  # gitingest logs through loguru, configured at import
    import gitingest.output_formatter as fmt
    from gitingest import ingest

    fmt._format_token_count = lambda text: None  # offline: no tiktoken download
    t = time.perf_counter()
    summary, tree_text, content = ingest(tree, max_file_size=max_file)
    dt = time.perf_counter() - t
    files = set()
    bodies = _GI_FILE.split(content)
    for path, body in zip(bodies[1::2], bodies[2::2]):
        if not body.startswith(_GI_PLACEHOLDERS):
            files.add(path)
    return dt, files, len(tree_text) + len(content)


def _ours(tree: str, max_file: int) -> tuple[float, set[str], int]:
    limits = PackLimits(max_file_bytes=max_file, max_total_bytes=1024 * MiB, max_files=100_000)
    t = time.perf_counter()
    doc = pack_codebase(tree, limits=limits)
    dt = time.perf_counter() - t
    return dt, {s.anchor for s in doc.sections}, len(doc.text)


def run(quick: bool = False, tree: str | None = None, repeats: int | None = None) -> tuple[list[dict], dict]:
    """(table rows, JSON fields) for packing `tree` with both tools; best of `repeats` runs each."""
    tree = tree or default_tree(quick)
    repeats = repeats or 3
    max_file = 1 * MiB
    ours = min((_ours(tree, max_file) for _ in range(repeats)), key=lambda r: r[0])
    theirs = min((_gitingest(tree, max_file) for _ in range(repeats)), key=lambda r: r[0])
    only_ours, only_theirs = sorted(ours[1] - theirs[1]), sorted(theirs[1] - ours[1])
    rows = [
        {"tool": "wholedoc pack_codebase", "seconds": round(ours[0], 3), "files": len(ours[1]), "chars": ours[2]},
        {"tool": "gitingest ingest()", "seconds": round(theirs[0], 3), "files": len(theirs[1]), "chars": theirs[2]},
    ]
    fields = {
        "pack_tree": tree,
        "pack_seconds": round(ours[0], 4),
        "gitingest_seconds": round(theirs[0], 4),
        "pack_speedup_vs_gitingest": round(theirs[0] / ours[0], 2) if ours[0] else None,
        "pack_files": len(ours[1]),
        "gitingest_files": len(theirs[1]),
        "pack_files_common": len(ours[1] & theirs[1]),
        "pack_only_ours": len(only_ours),
        "pack_only_gitingest": len(only_theirs),
        "pack_only_ours_examples": only_ours[:8],
        "pack_only_gitingest_examples": only_theirs[:8],
    }
    return rows, fields


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pipeline.bench_pack", description=__doc__)
    ap.add_argument("--quick", action="store_true", help="small tree, one run each")
    ap.add_argument("--tree", help="the source tree to pack (default: transformers, or email with --quick)")
    ap.add_argument("--repeats", type=int, help="runs of each tool, the fastest reported (default 3)")
    args = ap.parse_args(argv)
    rows, fields = run(args.quick, args.tree, args.repeats)
    print(f"{'tool':<26}{'seconds':>10}{'files':>8}{'chars':>12}")
    for r in rows:
        print(f"{r['tool']:<26}{r['seconds']:>10.3f}{r['files']:>8}{r['chars']:>12}")
    print(f"tree: {fields['pack_tree']}  speedup: {fields['pack_speedup_vs_gitingest']}x  "
          f"same files: {fields['pack_files_common']}  only ours: {fields['pack_only_ours']} "
          f"{fields['pack_only_ours_examples']}  only gitingest: {fields['pack_only_gitingest']} "
          f"{fields['pack_only_gitingest_examples']}")
    print(json.dumps(fields))
    return 0


if __name__ == "__main__":
    sys.exit(main())
