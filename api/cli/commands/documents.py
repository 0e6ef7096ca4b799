"""`wholedoc documents` / `jobs` / `result ID` / `cancel JOB`: what is on the deployment (WHOLEDOC_API_URL, or the
embedded one), newest first."""

import json

from pipeline.words import plural


def register(subparsers) -> None:
    for what, help_text in (("documents", "list uploaded documents, newest first"),
                            ("jobs", "list jobs (extraction, summaries, questions), newest first")):
        p = subparsers.add_parser(what, help=help_text)
        p.add_argument("--limit", type=int, default=20, help="how many (1-200; default 20)")
        p.add_argument("--after", metavar="ID", help="the page after this id (the last one printed)")
        p.add_argument("--json", action="store_true", help="print the API's page as JSON")
        p.set_defaults(func=_list, what=what)
    p = subparsers.add_parser("result", help="print a stored result (a summary or an answer) by its id")
    p.add_argument("id", help="a result id (res_…), as a finished job's result_id")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the text")
    p.set_defaults(func=_result)
    p = subparsers.add_parser("cancel", help="cancel a queued or running job")
    p.add_argument("job", help="a job id")
    p.set_defaults(func=_cancel)


def _row(what: str, item: dict) -> str:
    if what == "documents":
        n, unit = (item["num_pages"], "page") if item["kind"] == "pdf" else (item["num_files"], "file")
        size = f"{plural(n, unit)}, {item['num_tokens']:,} tokens" if n is not None and item.get("num_tokens") else "-"
        return f"{item['id']}  {item['status']:<8} {item['kind']:<8} {size:<28} {item.get('filename') or ''}"
    return (f"{item['id']}  {item['state']:<9} {item['kind']:<9} {item.get('document_id') or '-'}  "
            f"{item.get('result_id') or ''}")


def _list(args) -> int:
    from api.cli.flow import on_deployment

    def work(client):
        page = client.list(args.what, args.limit, args.after)
        if args.json:
            print(json.dumps(page, ensure_ascii=False))
        else:
            for item in page["data"]:
                print(_row(args.what, item))
            if page["has_more"]:
                print(f"# more: wholedoc {args.what} --after {page['last_id']}")
        return 0

    return on_deployment(work)


def _result(args) -> int:
    from api.cli.flow import on_deployment
    from api.cli.output import print_result

    return on_deployment(lambda client: print_result(client.result(args.id), args.json) or 0)


def _cancel(args) -> int:
    from api.cli.flow import on_deployment

    def work(client):
        job = client.cancel(args.job)
        print(f"{job['id']}  {job['state']}")
        return 0

    return on_deployment(work)
