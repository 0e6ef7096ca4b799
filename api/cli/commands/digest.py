"""`wholedoc digest schedule CORPUS --cron "0 7 * * 1" [--tz Europe/Berlin] [--style S]`, `digest run CORPUS`,
`digest ls`: scheduled digests of a corpus on the deployment (WHOLEDOC_API_URL, or the embedded one, whose beat
makes the scheduled runs). docs/digests-and-webhooks.md."""

import json
import time

from pipeline.prompts.styles import STYLES
from pipeline.words import plural

POLL = 0.5  # seconds between looks at a running digest


def register(subparsers) -> None:
    p = subparsers.add_parser("digest", help="scheduled digests of a corpus (the new documents since the last one)")
    sub = p.add_subparsers(dest="digest_command", required=True)
    s = sub.add_parser("schedule", help="schedule a corpus's digest")
    s.add_argument("corpus", metavar="CORPUS", help="the corpus's name")
    s.add_argument("--cron", required=True, help='a 5-field cron expression, e.g. "0 7 * * 1" (Mondays at 07:00)')
    s.add_argument("--tz", default="UTC", help="the IANA time zone the cron is read in (default UTC), e.g. "
                   "Europe/Berlin")
    s.add_argument("--style", default="brief", choices=sorted(STYLES), help="the style of each document's summary "
                   "(default brief)")
    s.add_argument("--paused", action="store_true", help="make it paused (it runs only when asked: digest run)")
    s.set_defaults(func=_schedule)
    r = sub.add_parser("run", help="digest a corpus now (its documents added since its last digest) and print it")
    r.add_argument("corpus", metavar="CORPUS", help="the corpus's name")
    r.add_argument("--style", default="brief", choices=sorted(STYLES), help="the summaries' style when the corpus "
                   "has no schedule yet (a paused one is made to hold its runs; default brief)")
    r.add_argument("--json", action="store_true", help="print the run and its digest as one JSON object")
    r.add_argument("-o", "--output", metavar="FILE", help="write the digest (or the JSON) to FILE")
    r.set_defaults(func=_run)
    ls = sub.add_parser("ls", help="list digest schedules with their last run")
    ls.add_argument("--json", action="store_true", help="print the API's objects as JSON, one per line")
    ls.set_defaults(func=_ls)


def _schedule(args) -> int:
    from api.cli.corpora import call, need_corpus
    from api.cli.flow import on_deployment
    from api.cli.output import err

    def work(client):
        corpus = need_corpus(client, args.corpus)
        digest = call(client, "POST", f"/v1/corpora/{corpus['id']}/digests",
                      json={"cron": args.cron, "timezone": args.tz, "style": args.style, "paused": args.paused})
        print(digest["id"])
        err(f"digest of {args.corpus}: {digest['cron']} ({digest['timezone']}), "
            + ("paused" if digest["paused"] else f"next run {digest['next_run_at']}"))
        return 0

    return on_deployment(work)


def _schedule_of(client, corpus: dict, style: str) -> dict:
    from api.cli.corpora import call

    found = call(client, "GET", "/v1/digests", params={"corpus_id": corpus["id"], "limit": 1})["data"]
    if found:
        return found[0]
    return call(client, "POST", f"/v1/corpora/{corpus['id']}/digests",
                json={"cron": "0 7 * * 1", "style": style, "paused": True})


def _run(args) -> int:
    from api.cli.corpora import call, need_corpus
    from api.cli.flow import on_deployment
    from api.cli.output import err, print_result

    def work(client):
        corpus = need_corpus(client, args.corpus)
        digest = _schedule_of(client, corpus, args.style)
        run = call(client, "POST", f"/v1/digests/{digest['id']}/run")
        url, stage = f"/v1/digests/{digest['id']}/runs/{run['id']}", None
        err(f"digest run {run['id']}: {plural(len(run['document_ids']), 'new document')} since the last digest")
        while run["state"] not in ("done", "failed", "cancelled"):
            if run["stage"] != stage:
                stage = run["stage"]
                err(f"  {stage}…")
            time.sleep(POLL)
            run = call(client, "GET", url)
        for s in run["skipped"]:
            err(f"skipped {s['document_id']}: {s['reason']}")
        if run["state"] != "done":
            err(f"error: the digest {run['state']}: {run['error']}")
            return 1
        if not run["result_id"]:
            err("nothing new to digest")
            return 0
        result = call(client, "GET", f"/v1/results/{run['result_id']}")
        if args.json:
            body = json.dumps({"run": run, "text": result["text"], "citations": result["citations"],
                               "usage": result["usage"], "notice": result.get("notice")}, ensure_ascii=False)
            if args.output:
                with open(args.output, "w", encoding="utf-8") as f:
                    f.write(body + "\n")
                err(f"wrote {args.output}")
            else:
                print(body)
            return 0
        print_result(result, output=args.output)
        for d in run["documents"]:
            err(f"doc {d['doc']}: {d['document_id']}  {d.get('title') or ''}")
        return 0

    return on_deployment(work)


def _ls(args) -> int:
    from api.cli.corpora import call
    from api.cli.flow import on_deployment

    def work(client):
        names = {c["id"]: c["name"] for c in call(client, "GET", "/v1/corpora", params={"limit": 200})["data"]}
        for d in call(client, "GET", "/v1/digests", params={"limit": 200})["data"]:
            last = call(client, "GET", f"/v1/digests/{d['id']}/runs", params={"limit": 1})["data"]
            if args.json:
                print(json.dumps(d | {"last_run": last[0] if last else None}, ensure_ascii=False))
                continue
            when = "paused" if d["paused"] else f"next {d['next_run_at']}"
            ran = f"last run {last[0]['state']} ({last[0]['created_at']})" if last else "never run"
            print(f"{d['id']}  {names.get(d['corpus_id'], d['corpus_id'])}  {d['cron']} ({d['timezone']}) "
                  f"{d['style']}  {when}  {ran}")
        return 0

    return on_deployment(work)
