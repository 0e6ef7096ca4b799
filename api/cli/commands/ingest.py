"""`wholedoc ingest FILE_OR_DIR [--json] [-o TEXT_FILE] [--password P]`: show what extraction gets, locally."""

import argparse
import json
import sys

from pipeline.errors import PipelineError
from pipeline.words import plural


def register(subparsers) -> None:
    p = subparsers.add_parser("ingest", help="extract a PDF or pack a codebase and report what was extracted",
                              description="Extract a PDF (page by page, with [page N] anchors) or pack a codebase "
                                          "(folder, zip, tar) and print pages/files, tokens, statuses and skips.")
    p.add_argument("source", help="a PDF, a zip / tar(.gz) archive, or a folder; - reads a PDF or an archive from "
                   "standard input")
    p.add_argument("--json", action="store_true", help="print JSON: per page {page, status, text} (or per file)")
    p.add_argument("-o", "--output", help="write the extracted text to this file (the JSON then names it)")
    p.add_argument("--password", help="password of an encrypted PDF")
    p.add_argument("--ocr", action="store_true", help="OCR pages without a text layer (needs tesseract)")
    p.add_argument("--no-isolation", action="store_true", help="extract in this process (no time/memory limits)")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds for the whole input (default: %(default)s)")
    p.add_argument("--page-timeout", type=float, default=60.0, help="seconds for one PDF page (default: %(default)s)")
    p.add_argument("--memory-gib", type=float, default=3.0,
                   help="address-space limit of the extraction process in GiB (default: %(default)s)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from api.cli.stdin import path_or_stdin
    from pipeline.ingest import ingest_path
    from pipeline.pdf import IsolationLimits, PdfOptions

    try:
        with path_or_stdin(args.source) as source:
            doc = ingest_path(source, password=args.password, isolate=not args.no_isolation,
                              pdf_options=PdfOptions(ocr=args.ocr),
                              limits=IsolationLimits(timeout_s=args.timeout, page_timeout_s=args.page_timeout,
                                                     memory_bytes=int(args.memory_gib * 2**30)))
    except PipelineError as e:
        print(f"wholedoc ingest: {type(e).__name__}: {e}", file=sys.stderr)
        return 2
    tokens = _count_tokens(doc.text)
    over = _over_window(doc, tokens)
    if args.output:
        with open(args.output, "w", encoding="utf-8", newline="\n") as f:
            f.write(doc.text)
    unit = "page" if doc.kind == "pdf" else "file"
    if args.json:
        out = {"source": args.source, "kind": str(doc.kind), "metadata": doc.metadata, "tokens": tokens,
               "chars": len(doc.text), "output": args.output,
               "skipped": [{"path": s.path, "reason": s.reason} for s in doc.skipped],
               "over_window": over and {"detail": str(over), "needed_tokens": over.needed_tokens,
                                        "window_tokens": over.window_tokens}}
        out[unit + "s"] = [_entry(s, unit, with_text=not args.output) for s in doc.sections]
        print(json.dumps(out, ensure_ascii=False))
        return 0
    m = doc.metadata
    n = len(doc.sections)
    print(f"{args.source}: {doc.kind}, {plural(n, unit)}, {tokens} tokens, {len(doc.text)} characters"
          + (f", title {m['title']!r}" if m.get("title") else "") + (f" → {args.output}" if args.output else ""))
    if over:
        print(f"  over the model's window: {over}")
    for s in doc.sections:
        line = f"  {unit} {s.anchor}: {s.status}" + (f" — {s.reason}" if s.reason else "")
        print(line + (f" [{s.title}]" if s.title and unit == "page" else ""))
    for s in doc.skipped:
        print(f"  skipped {s.path}: {s.reason}")
    return 0


def _entry(section, unit: str, with_text: bool) -> dict:
    key = unit if unit == "file" else "page"
    entry = {key: int(section.anchor) if unit == "page" else section.anchor, "status": section.status}
    if section.reason:
        entry["reason"] = section.reason
    if section.title:
        entry["title"] = section.title
    if with_text:
        entry["text"] = section.text
    return entry


def _over_window(doc, tokens: int):
    """The OverWindow a brief summary of this document would get (WHOLEDOC_MAX_MODEL_LEN, else V4's window), or
    None when it fits."""
    from api.cli.settings import CliSettings
    from pipeline.errors import OverWindow
    from pipeline.prompts.styles import get_style
    from pipeline.prompts.window import refuse_if_over, window_tokens

    window = window_tokens(None, CliSettings.load().max_model_len)
    try:
        refuse_if_over(tokens, get_style("brief").max_tokens, window, kind=str(doc.kind), title=doc.title,
                       style="brief")
    except OverWindow as exc:
        return exc
    return None


def _count_tokens(text: str) -> int:
    from pipeline.tokens import count_tokens

    return count_tokens(text)
