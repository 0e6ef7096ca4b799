"""`wholedoc summarize FILE [--style S] [--thinking] [--json] [-o OUT]`: against WHOLEDOC_API_URL, or an embedded
deployment."""

from pipeline.prompts.styles import STYLES


def register(subparsers) -> None:
    p = subparsers.add_parser("summarize", help="summarize a PDF or a codebase archive (whole, never chunked)")
    p.add_argument("file", help="a PDF or a codebase archive (.zip, .tar, .tar.gz; - reads it from standard input), or "
                   "the id of a document already uploaded")
    p.add_argument("--style", default="brief", choices=sorted(STYLES), help="what kind of summary (default: brief)")
    p.add_argument("--thinking", action="store_true", help="let the model think first (off by default)")
    p.add_argument("--max-tokens", type=int, help="output cap (at most the style's / the answer cap)")
    p.add_argument("--over-window", choices=("refuse", "sections"), default="refuse",
                   help="a document over the model's window: refuse (the default: the counts, before any inference) "
                        "or sections (summarize its parts, whole pages or files each, then combine them)")
    p.add_argument("--json", action="store_true",
                   help="print one JSON object (text, citations, usage, notice, ids) instead of the text")
    p.add_argument("-o", "--output", metavar="FILE", help="write the summary (or the JSON) to FILE instead of stdout")
    p.set_defaults(func=_run)


def _run(args) -> int:
    from api.cli.flow import run

    return run(args.file, lambda client, doc_id: client.summarize(doc_id, args.style, args.thinking, args.max_tokens,
                                                                    args.over_window),
               as_json=args.json, output=args.output)
