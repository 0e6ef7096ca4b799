"""`wholedoc pack DIR_OR_ARCHIVE -o OUT.txt`: pack a codebase into one text file, locally, with no services."""

import argparse
import json
import sys

from pipeline.codebase import PackLimits, pack_codebase
from pipeline.errors import PipelineError
from pipeline.words import plural


def register(subparsers) -> None:
    p = subparsers.add_parser("pack", help="pack a folder or zip/tar archive of code into one text file",
                              description="Pack a codebase (folder, zip or tar[.gz]) into one deterministic text: "
                                          "a tree header, then every text file under '===== path ====='.")
    p.add_argument("source", help="a folder or a zip / tar(.gz) archive; - reads an archive from standard input")
    p.add_argument("-o", "--output", help="write the packed text here (default: standard output)")
    p.add_argument("-n", "--line-numbers", action="store_true", help="prefix every line with its number")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("--max-file-bytes", type=int, default=PackLimits.max_file_bytes,
                   help="skip files larger than this (default: %(default)s)")
    p.add_argument("--max-total-bytes", type=int, default=PackLimits.max_total_bytes,
                   help="fail when the included text is larger than this (default: %(default)s)")
    p.add_argument("--no-gitignore", action="store_true", help="do not honour .gitignore files")
    p.add_argument("--no-default-ignores", action="store_true",
                   help="do not skip VCS folders, lock files, node_modules, build outputs, …")
    p.add_argument("--show-skipped", action="store_true", help="list every skipped path with its reason")
    p.add_argument("--tokens", action="store_true",
                   help="count tokens with the DeepSeek-V4 tokenizer (total and the 5 largest files)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    limits = PackLimits(max_file_bytes=args.max_file_bytes, max_total_bytes=args.max_total_bytes,
                        use_gitignore=not args.no_gitignore, use_default_ignores=not args.no_default_ignores)
    from api.cli.stdin import path_or_stdin

    try:
        with path_or_stdin(args.source) as source:
            doc = pack_codebase(source, line_numbers=args.line_numbers, limits=limits)
    except PipelineError as e:
        print(f"wholedoc pack: {type(e).__name__}: {e}", file=sys.stderr)
        return 2
    if args.output:
        with open(args.output, "w", encoding="utf-8", newline="\n") as f:
            f.write(doc.text)
    else:
        sys.stdout.write(doc.text)
    info = sys.stdout if args.output else sys.stderr  # keep stdout clean when it carries the text
    m = doc.metadata
    tokens = _tokens(doc) if args.tokens else None
    if args.json:
        summary = {"source": args.source, "output": args.output, **m, "chars": len(doc.text),
                   "files": [s.anchor for s in doc.sections]}
        if tokens:
            summary["tokens"], summary["largest_files"] = tokens
        if args.show_skipped:
            summary["skipped"] = [{"path": s.path, "reason": s.reason} for s in doc.skipped]
        print(json.dumps(summary), file=info)
        return 0
    reasons = ", ".join(f"{k}: {v}" for k, v in m["skipped_by_reason"].items()) or "none"
    print(f"packed {plural(m['file_count'], 'file')} ({m['total_bytes']} bytes, {len(doc.text)} characters)"
          f"{' into ' + args.output if args.output else ''}; skipped {m['skipped_count']} ({reasons})", file=info)
    if tokens:
        print(f"tokens: {tokens[0]} (DeepSeek-V4 tokenizer); largest files: "
              + ", ".join(f"{f['path']} {f['tokens']}" for f in tokens[1]), file=info)
    if args.show_skipped:
        for s in doc.skipped:
            print(f"  skipped {s.path}: {s.reason}", file=info)
    return 0


def _tokens(doc) -> tuple[int, list[dict]]:
    """Total tokens of the packed text, and the 5 files with the most tokens."""
    from pipeline.tokens import count_tokens

    per_file = sorted(((count_tokens(s.text), s.anchor) for s in doc.sections), key=lambda t: (-t[0], t[1]))
    return count_tokens(doc.text), [{"path": p, "tokens": n} for n, p in per_file[:5]]
