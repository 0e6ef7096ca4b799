"""`wholedoc summarize FILE [--style S] [--thinking]`: against WHOLEDOC_API_URL, or an embedded deployment."""

from pipeline.prompts.styles import STYLES


def register(subparsers) -> None:
    p = subparsers.add_parser("summarize", help="summarize a PDF or a codebase archive (whole, never chunked)")
    p.add_argument("file")
    p.add_argument("--style", default="brief", choices=sorted(STYLES))
    p.add_argument("--thinking", action="store_true", help="let the model think first (off by default)")
    p.add_argument("--max-tokens", type=int, help="output cap (at most the style's / the answer cap)")
    p.set_defaults(func=_run)


def _run(args) -> int:
    from api.cli.flow import run

    return run(args.file, lambda client, doc_id: client.summarize(doc_id, args.style, args.thinking, args.max_tokens))
