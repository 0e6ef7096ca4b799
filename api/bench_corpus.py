"""Prefix-cache share of questions over a corpus: packed documents in document-id order (what wholedoc sends) beside
the same documents in relevance order, in the same run (docs/corpus-questions.md#benchmark).

    python -m api.bench_corpus [--checkpoint DIR | --url URL] [--docs 24] [--window 4096] [--quick]

A generated corpus (four topics, each document a few pages with one unique fact) is indexed in SQLite; ten
questions, grouped by topic into question sets, are each packed into the window (pipeline.search.select) and sent
to wholedoc's inference server (started here on the checkpoint; default: a `tiny` random-weight one made in a
temporary folder), once in each order, under a cache salt per order so neither warms the other's cache. The server
reports how many prompt tokens came from its prefix cache. Prints a table, then one JSON line; exits 1 unless
document-id order is at least as good on every question set and better overall (the floor).
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from pipeline.client import ClientConfig, InferenceClient
from pipeline.document import ExtractedDocument, Kind, Section
from pipeline.prompts.corpus_pack import budget_for, corpus_prompt
from pipeline.records.db import make_engine, session_factory, transaction, upgrade
from pipeline.records.documents import create_document, mark_document_ready
from pipeline.records.tenants import create_tenant
from pipeline.search import Scope, search_index
from pipeline.search.select import select_documents
from pipeline.tokens import count_tokens

TOPICS = {
    "harbour": "harbour cranes berth tide container vessel pilot dock quay",
    "orchard": "orchard apple blossom harvest grafting cider frost pruning",
    "foundry": "foundry furnace casting ingot alloy crucible mould slag",
    "archive": "archive manuscript ledger catalogue vellum binding folio shelf",
}
FILLER = "staff meeting schedule budget review quarterly report office notes general update".split()
# question sets: each question asks for one document's unique fact, in words of its topic
QUESTIONS = [("harbour", 0), ("harbour", 3), ("harbour", 5), ("orchard", 1), ("orchard", 4), ("orchard", 2),
             ("foundry", 2), ("foundry", 0), ("archive", 5), ("archive", 1)]
OUTPUT_TOKENS = 1  # only the prompt's prefill matters here


def document(topic: str, k: int, rng: random.Random, pages: int = 3) -> tuple[ExtractedDocument, str]:
    words = TOPICS[topic].split()
    texts = []
    for _ in range(pages):
        sentences = [" ".join(rng.choice(words + FILLER) for _ in range(12)).capitalize() + "." for _ in range(9)]
        texts.append(" ".join(sentences))
    code = f"{topic[:3]}{k}x{rng.randint(100, 999)}"
    texts[1] += f" The {topic} register entry {code} records {rng.randint(1000, 9999)} units."
    sections = tuple(Section(i, str(i + 1), "text", f"[page {i + 1}]\n{t}\n") for i, t in enumerate(texts))
    doc = ExtractedDocument(Kind.PDF, "".join(s.text for s in sections), sections,
                            {"title": f"{topic.title()} report {k}"})
    return doc, code


def start_server(checkpoint: Path | None, window: int, tmp: Path) -> tuple[subprocess.Popen, str]:
    if checkpoint is None:
        checkpoint = tmp / "tiny"
        subprocess.run([sys.executable, "-m", "inference.devcheckpoint", "--out", str(checkpoint), "--preset",
                        "tiny"], check=True, capture_output=True, timeout=600)
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = (tmp / "inference.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "inference.serve", "--checkpoint", str(checkpoint), "--port",
                             str(port), "--max-model-len", str(window), "--log-level", "warning"],
                            stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the inference server exited; see {tmp / 'inference.log'}")
        try:
            if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                return proc, base + "/v1"
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    proc.kill()
    raise SystemExit("the inference server did not become healthy in 300 s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--checkpoint", type=Path, help="a checkpoint folder (default: a tiny dev one, made here)")
    ap.add_argument("--url", help="a wholedoc inference server already running (…/v1): its window is used, nothing "
                    "is started")
    ap.add_argument("--docs", type=int, default=24, help="documents in the corpus (at least 20; default 24)")
    ap.add_argument("--window", type=int, default=4096, help="the server's max_model_len (default 4096)")
    ap.add_argument("--quick", action="store_true", help="the first question of each set and one more (CI)")
    args = ap.parse_args()
    assert args.docs >= 20, "--docs: at least 20"
    rng = random.Random(7)
    with tempfile.TemporaryDirectory(prefix="wholedoc-bench-corpus-") as tmp_name:
        tmp = Path(tmp_name)
        url = f"sqlite:///{tmp / 'bench.sqlite'}"
        upgrade(url)
        engine = make_engine(url)
        sessions = session_factory(engine)
        codes: dict[tuple[str, int], str] = {}  # (topic, k) → the unique code in that document
        texts: dict[str, ExtractedDocument] = {}  # document id → its text
        with transaction(sessions) as s:
            tenant = create_tenant(s, "bench").id
            topics = list(TOPICS)
            for i in range(args.docs):
                topic, k = topics[i % len(topics)], i // len(topics)
                doc, codes[(topic, k)] = document(topic, k, rng)
                row = create_document(s, tenant, kind="pdf", blob_key=f"bench/{i}", sha256=f"{i:064x}",
                                      size_bytes=len(doc.text), filename=f"{topic}-{k}.pdf")
                mark_document_ready(s, row.id, text_blob_key=f"bench/{i}", num_sections=len(doc.sections),
                                    num_tokens=count_tokens(doc.text), title=doc.title)
                search_index(s).index_document(s, tenant, row.id, doc)
                texts[row.id] = doc
        questions = [(topic, f"What does the {topic} register entry {codes[(topic, k)]} record?")
                     for topic, k in QUESTIONS if (topic, k) in codes]
        if args.quick:
            questions = [q for i, q in enumerate(questions) if i in (0, 1, 3, 4)]
        proc, base = (None, args.url.rstrip("/")) if args.url else start_server(args.checkpoint, args.window, tmp)
        try:
            client = InferenceClient(ClientConfig(base_url=base, model="wholedoc", max_retries=0))
            window = client.max_model_len() or args.window
            run = f"{time.time_ns()}"
            rows = []
            for topic, q in questions:
                with sessions() as s:
                    sel = select_documents(s, Scope(tenant), q, budget_for(window, q, OUTPUT_TOKENS))
                packed = sel.plan.packed
                by_relevance = sorted(packed, key=lambda c: (-c.score, c.document_id))
                row = {"set": topic, "question": q, "documents": len(packed)}
                for order, cands in (("stable", packed), ("relevance", by_relevance)):
                    prompt = corpus_prompt([texts[c.document_id] for c in cands], q, max_tokens=OUTPUT_TOKENS)
                    done = client.chat(prompt.messages, max_tokens=OUTPUT_TOKENS, thinking=False,
                                       cache_salt=f"bench-{order}-{run}")
                    row[order] = (done.usage.prompt_tokens, done.usage.cached_tokens or 0)
                rows.append(row)
        finally:
            if proc is not None:
                proc.terminate()
                proc.wait(30)
            engine.dispose()
    report(rows, window, args.docs)


def _share(rows: list[dict], order: str) -> float:
    prompt = sum(r[order][0] for r in rows)
    return sum(r[order][1] for r in rows) / prompt if prompt else 0.0


def report(rows: list[dict], window: int, docs: int) -> None:
    sets = list(dict.fromkeys(r["set"] for r in rows))
    print(f"{'question set':<14} {'questions':>9} {'prompt tokens':>13} {'cached, id order':>17} "
          f"{'cached, relevance order':>24}")
    per_set = {}
    for name in sets:
        mine = [r for r in rows if r["set"] == name]
        per_set[name] = {"questions": len(mine), "prompt_tokens": sum(r["stable"][0] for r in mine),
                         "stable_share": round(_share(mine, "stable"), 4),
                         "relevance_share": round(_share(mine, "relevance"), 4)}
        p = per_set[name]
        print(f"{name:<14} {p['questions']:>9} {p['prompt_tokens']:>13,} {p['stable_share']:>17.1%} "
              f"{p['relevance_share']:>24.1%}")
    stable, relevance = _share(rows, "stable"), _share(rows, "relevance")
    print(f"{'all':<14} {len(rows):>9} {sum(r['stable'][0] for r in rows):>13,} {stable:>17.1%} {relevance:>24.1%}")
    floor = all(p["stable_share"] >= p["relevance_share"] for p in per_set.values()) and stable > relevance
    print(json.dumps({"bench": "api.bench_corpus", "documents": docs, "questions": len(rows), "window": window,
                      "documents_per_prompt": [r["documents"] for r in rows], "stable_cached_share": round(stable, 4),
                      "relevance_cached_share": round(relevance, 4), "sets": per_set, "floor_met": floor}))
    if not floor:
        raise SystemExit("floor missed: document-id order must be at least as good on every question set and better "
                         "overall")


if __name__ == "__main__":
    main()
