"""`wholedoc ask FILE "question" [--thinking]`: against WHOLEDOC_API_URL, or an embedded deployment."""


def register(subparsers) -> None:
    p = subparsers.add_parser("ask", help="answer a question about a whole PDF or codebase, with citations")
    p.add_argument("file")
    p.add_argument("question")
    p.add_argument("--thinking", action="store_true", help="let the model think first (off by default)")
    p.add_argument("--max-tokens", type=int, help="output cap (at most the style's / the answer cap)")
    p.set_defaults(func=_run)


def _run(args) -> int:
    from api.cli_flow import run

    return run(args.file, lambda client, doc_id: client.ask(doc_id, args.question, args.thinking, args.max_tokens))
