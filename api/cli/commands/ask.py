"""`wholedoc ask FILE "question" ["question" …] [--questions-file F] [--json] [--thinking]`: against
WHOLEDOC_API_URL, or an embedded deployment. Many questions about one document are submitted at once."""

import sys
from pathlib import Path


def register(subparsers) -> None:
    p = subparsers.add_parser("ask", help="answer questions about a whole PDF or codebase, with citations")
    p.add_argument("file", help="a PDF or a codebase archive (- reads it from standard input), or the id of a "
                   "document already uploaded; with --corpus, the first question")
    p.add_argument("question", nargs="*", help="one or more questions (each its own answer)")
    p.add_argument("--questions-file", help="more questions, one per line (blank lines and #-comments skipped); - "
                   "reads them from standard input")
    p.add_argument("--json", action="store_true", help="print one JSON object per question (question, answer, "
                   "citations, usage, state, error)")
    p.add_argument("--thinking", action="store_true", help="let the model think first (off by default)")
    p.add_argument("--max-tokens", type=int, help="output cap (at most the answer cap)")
    p.add_argument("--over-window", choices=("refuse", "sections"), default="refuse",
                   help="a document over the model's window: refuse (the default: the counts, before any inference) "
                        "or sections (ask about the most relevant whole pages or files that fit)")
    p.add_argument("--corpus", metavar="NAME", help="ask over a corpus instead of one document: every positional "
                   "argument is a question, answered from the corpus's most relevant whole documents that fit the "
                   "window (all of them when they fit), citing document and page")
    p.add_argument("--dry-run", action="store_true", help="with --corpus: show the documents each question would use, "
                   "their tokens and the tokens expected from the cache; ask nothing")
    p.set_defaults(func=_run)


def _questions(args) -> list[str]:
    questions = list(args.question)
    if args.questions_file:
        text = sys.stdin.read() if args.questions_file == "-" else Path(args.questions_file).read_text(encoding="utf-8")
        questions += [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return questions


def _run(args) -> int:
    from api.cli.flow import run, run_questions

    if args.file == "-" and args.questions_file == "-":
        print("error: only one of FILE and --questions-file can be - (standard input)", file=sys.stderr)
        return 2
    try:
        questions = _questions(args)
    except OSError as exc:
        print(f"error: --questions-file: {exc}", file=sys.stderr)
        return 2
    if args.corpus:  # every positional argument is a question (docs/corpus-questions.md)
        from api.cli.corpus_ask import run_corpus

        if args.file == "-":
            print("error: with --corpus the arguments are questions; - is not one", file=sys.stderr)
            return 2
        return run_corpus(args.corpus, [args.file, *questions], args.thinking, args.max_tokens, args.json,
                          args.dry_run)
    if args.dry_run:
        print("error: --dry-run works with --corpus only", file=sys.stderr)
        return 2
    if not questions:
        print("error: give at least one question (as an argument or with --questions-file)", file=sys.stderr)
        return 2
    if len(questions) == 1 and not args.json:
        return run(args.file, lambda client, doc_id: client.ask(doc_id, questions[0], args.thinking,
                                                                args.max_tokens, args.over_window))
    return run_questions(args.file, questions, args.thinking, args.max_tokens, args.json, args.over_window)
