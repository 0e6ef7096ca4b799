"""`wholedoc corpus create NAME`, `corpus add NAME PATH... [--codebase]`, `corpus ls [NAME]`: named sets of documents
on the deployment (WHOLEDOC_API_URL, or the embedded one), for batches (`wholedoc batch --corpus NAME`)."""

import json

from pipeline.words import plural


def register(subparsers) -> None:
    p = subparsers.add_parser("corpus", help="named sets of documents (for ask --corpus, batch --corpus and digest)")
    sub = p.add_subparsers(dest="corpus_command", required=True)
    c = sub.add_parser("create", help="make an empty corpus")
    c.add_argument("name", help="its name (unique among yours)")
    c.set_defaults(func=_create)
    a = sub.add_parser("add", help="upload documents into a corpus (each extracted before it is added)")
    a.add_argument("name", help="the corpus's name")
    a.add_argument("paths", nargs="+", metavar="PATH", help="a PDF (one document), or a folder (every PDF directly "
                   "in it)")
    a.add_argument("--codebase", action="store_true", help="each PATH, a folder or an archive (.zip, .tar, .tar.gz), "
                   "is one codebase document")
    a.set_defaults(func=_add)
    ls = sub.add_parser("ls", help="list corpora, or one corpus's documents")
    ls.add_argument("name", nargs="?", help="a corpus's name: list its documents")
    ls.add_argument("--json", action="store_true", help="print the API's objects as JSON")
    ls.set_defaults(func=_ls)


def _create(args) -> int:
    from api.cli.corpora import call
    from api.cli.flow import on_deployment

    def work(client):
        corpus = call(client, "POST", "/v1/corpora", json={"name": args.name})
        print(f"{corpus['id']}  {corpus['name']}")
        return 0

    return on_deployment(work)


def _add(args) -> int:
    from api.cli.corpora import add_to_corpus, expand, need_corpus
    from api.cli.flow import on_deployment
    from api.cli.output import err

    try:
        paths = expand(args.paths, args.codebase)
    except ValueError as exc:
        err(f"error: {exc}")
        return 2

    def work(client):
        corpus = need_corpus(client, args.name)
        docs, added, failed = add_to_corpus(client, corpus, paths)
        for doc in docs:
            print(f"{doc['id']}  {doc.get('filename') or ''}")
        members = len({d["id"] for d in docs}) - added  # the same bytes twice are one document
        err(f"corpus {args.name}: {plural(added, 'document')} added"
            + (f", {plural(members, 'document')} in it already" if members else ""))
        return 1 if failed else 0

    return on_deployment(work)


def _ls(args) -> int:
    from api.cli.corpora import call, need_corpus
    from api.cli.flow import on_deployment

    def work(client):
        if args.name:
            corpus = need_corpus(client, args.name)
            rows, after = [], None
            while True:
                page = call(client, "GET", f"/v1/corpora/{corpus['id']}/documents",
                            params={"limit": 200} | ({"after": after} if after else {}))
                rows += page["data"]
                if not page["has_more"]:
                    break
                after = page["last_id"]
            for d in rows:
                print(json.dumps(d, ensure_ascii=False) if args.json else
                      f"{d['id']}  {d['status']:<8} {d['kind']:<8} {d.get('num_tokens') or 0:>10,} tokens  "
                      f"{d.get('filename') or ''}")
            return 0
        page = call(client, "GET", "/v1/corpora", params={"limit": 200})
        for c in page["data"]:
            print(json.dumps(c, ensure_ascii=False) if args.json else
                  f"{c['id']}  {plural(c['document_count'], 'document', spec='>5')}  {c['name']}")
        return 0

    return on_deployment(work)
