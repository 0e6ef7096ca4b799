"""`wholedoc batch QUESTIONS_FILE (--corpus NAME | PATH...) [-o results.csv|results.jsonl] [--dry-run]`: every
question about every document as one batch on the deployment (docs/batches.md), with a bar of items answered and the
cached share of prompt tokens at the end. `--corpus NAME --mode corpus`: one answer per question over the corpus."""

import json
import sys
import time
from pathlib import Path

from pipeline.words import plural

POLL = 0.5  # seconds between looks at the batch
FINAL = ("done", "cancelled")


def register(subparsers) -> None:
    p = subparsers.add_parser("batch", help="ask every question about every document as one resumable batch")
    p.add_argument("questions_file", metavar="QUESTIONS_FILE", help="questions, one per line (blank lines and "
                   "#-comments skipped); - reads them from standard input")
    p.add_argument("paths", nargs="*", metavar="PATH", help="PDFs, folders of PDFs or document ids (instead of "
                   "--corpus)")
    p.add_argument("--corpus", metavar="NAME", help="the documents of this corpus (instead of PATHs)")
    p.add_argument("--codebase", action="store_true", help="each PATH, a folder or an archive, is one codebase "
                   "document")
    p.add_argument("-o", "--output", metavar="FILE", help="write the results to FILE: .csv or .jsonl (default: JSON "
                   "lines on standard output)")
    p.add_argument("--dry-run", action="store_true", help="print the items, prompt tokens and tokens expected from "
                   "the prefix cache; create nothing")
    p.add_argument("--mode", choices=("documents", "corpus"), default="documents",
                   help="documents: one answer per document and question (default); corpus (with --corpus): one answer "
                   "per question over the corpus's most relevant whole documents")
    p.add_argument("--thinking", action="store_true", help="let the model think first (off by default)")
    p.add_argument("--max-tokens", type=int, metavar="N", help="output cap of each answer (at most the answer cap)")
    p.set_defaults(func=_run)


def _questions(source: str) -> list[str]:
    text = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def _check_args(args) -> str | None:
    if bool(args.corpus) == bool(args.paths):
        return "give either --corpus NAME or one or more PATHs"
    if args.mode == "corpus" and not args.corpus:
        return "--mode corpus answers each question over a corpus: give --corpus NAME (not PATHs)"
    if args.output and not args.output.endswith((".csv", ".jsonl")):
        return "-o: the file name must end in .csv or .jsonl"
    return None


def _run(args) -> int:
    from api.cli.output import err

    if (problem := _check_args(args)) is not None:
        err(f"error: {problem}")
        return 2
    try:
        questions = _questions(args.questions_file)
    except OSError as exc:
        err(f"error: {args.questions_file}: {exc}")
        return 2
    if not questions:
        err("error: the questions file has no question")
        return 2
    return _submit(args, questions)


def _document_ids(client, args) -> list[str] | None:
    """The batch's documents: PATHs uploaded (each followed until ready) or given as ids; None when one failed."""
    from api.cli.corpora import call, expand, upload_ready
    from api.cli.flow import DOCUMENT_ID
    from api.cli.output import err

    ids, files = [], []
    for raw in args.paths:
        if not Path(raw).exists() and DOCUMENT_ID.fullmatch(raw):
            ids.append(call(client, "GET", f"/v1/documents/{raw}")["id"])
        else:
            files.append(raw)
    try:
        paths = expand(files, args.codebase)
    except ValueError as exc:
        err(f"error: {exc}")
        return None
    for path in paths:
        doc = upload_ready(client, path)
        if doc is None:
            return None
        ids.append(doc["id"])
    return ids


def _print_estimate(est: dict) -> None:
    share = est["cached_tokens"] / est["prompt_tokens"] if est["prompt_tokens"] else 0.0
    if est.get("mode") == "corpus" and sys.stdout.isatty():
        for q in est["per_question"]:
            what = (f"{plural(len(q['document_ids']), 'document')}, {q['prompt_tokens']:,} prompt tokens, "
                    f"{q['cached_tokens']:,} cached" if q["error"] is None else f"nothing fits: {q['error']}")
            print(f"question {q['question_index'] + 1}: {what}")
    print(json.dumps(est, ensure_ascii=False) if not sys.stdout.isatty() else
          f"{plural(est['items'], 'item')} over {plural(est['documents'], 'document')}: "
          f"{est['prompt_tokens']:,} prompt tokens, "
          f"{est['cached_tokens']:,} expected from the prefix cache ({share:.0%}, {est['cache_source']}), "
          f"{est['tokens_to_prefill']:,} to prefill; up to {est['max_output_tokens']:,} output tokens")


def _follow(client, batch: dict) -> dict:
    """Poll the batch with a bar of items ended; a pause's reason is printed when it changes."""
    from api.cli.corpora import call
    from api.cli.output import err
    from api.cli.progress import Bar

    bar, reason = Bar("answered", batch["counts"]["total"], "items"), None
    while True:
        counts = batch["counts"]
        bar.update(counts["done"] + counts["failed"] + counts["cancelled"])
        if batch["state"] == "paused" and batch["paused_reason"] != reason:
            reason = batch["paused_reason"]
            err(f"\npaused: {reason}")
        if batch["state"] in FINAL:
            bar.close()
            return batch
        time.sleep(POLL)
        batch = call(client, "GET", f"/v1/batches/{batch['id']}")


def _save(client, batch: dict, output: str | None) -> None:
    kind = "csv" if output and output.endswith(".csv") else "jsonl"
    with client.http.stream("GET", f"/v1/batches/{batch['id']}/results.{kind}") as r:
        if r.status_code >= 400:
            r.read()
            client._check(r)
        if output:
            with open(output, "w", encoding="utf-8", newline="") as f:
                for chunk in r.iter_text():
                    f.write(chunk)
        else:
            for chunk in r.iter_text():
                sys.stdout.write(chunk)
            sys.stdout.flush()


def _submit(args, questions: list[str]) -> int:
    from api.cli.corpora import call, need_corpus
    from api.cli.flow import on_deployment
    from api.cli.output import err

    def work(client):
        body = {"questions": questions, "thinking": args.thinking, "max_tokens": args.max_tokens, "mode": args.mode}
        if args.corpus:
            body["corpus_id"] = need_corpus(client, args.corpus)["id"]
        else:
            ids = _document_ids(client, args)
            if ids is None:
                return 1
            body["document_ids"] = ids
        if args.dry_run:
            _print_estimate(call(client, "POST", "/v1/batches", params={"dry_run": "true"}, json=body))
            return 0
        batch = call(client, "POST", "/v1/batches", json=body)
        err(f"batch {batch['id']}: {plural(batch['counts']['total'], 'item')}")
        try:
            batch = _follow(client, batch)
        except KeyboardInterrupt:
            call(client, "POST", f"/v1/batches/{batch['id']}/cancel")
            err(f"cancelled batch {batch['id']}")
            raise
        _save(client, batch, args.output)
        counts, prompt = batch["counts"], batch["prompt_tokens"]
        share = batch["cached_prompt_tokens"] / prompt if prompt else 0.0
        err(f"{counts['done']} done, {counts['failed']} failed, {counts['cancelled']} cancelled; "
            f"{batch['cached_prompt_tokens']:,} of {prompt:,} prompt tokens cached ({share:.0%})"
            + (f"; results in {args.output}" if args.output else ""))
        return 0 if counts["done"] == counts["total"] else 1

    return on_deployment(work)
