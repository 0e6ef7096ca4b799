"""`python -m pipeline.search.reindex [--all]`: index the documents (and summaries) that have no index rows, such as
those ingested before migration 0008 (docs/corpus-questions.md). Reads WHOLEDOC_DATABASE_URL and WHOLEDOC_BLOB_URL;
safe to run again (a document with rows is skipped unless --all, which rebuilds every one)."""

from __future__ import annotations

import argparse
import sys
from typing import NamedTuple

from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from pipeline.document_json import loads
from pipeline.errors import PipelineError, SettingsError
from pipeline.records.db import make_engine, session_factory, transaction
from pipeline.records.models import Document, DocumentStatus, JobKind, Result, SearchRow
from pipeline.search import search_index


class Reindexed(NamedTuple):
    documents: int
    summaries: int
    failed: tuple[str, ...] = ()  # "document <id>: <reason>" for each document whose text could not be read


def reindex(sessions, store, *, everything: bool = False, tenant_id: str | None = None) -> Reindexed:
    """Ready documents without text rows (every ready one with `everything`) and summary results without rows, of
    one tenant or all. A document whose text cannot be read is reported in `failed` and the rest go on."""
    with sessions() as s:
        docs = select(Document.id, Document.tenant_id, Document.text_blob_key).where(
            Document.status == DocumentStatus.READY, Document.text_blob_key.is_not(None))
        summaries = select(Result.id, Result.tenant_id, Result.document_id).where(
            Result.kind == JobKind.SUMMARIZE, Result.document_id.is_not(None),
            ~exists().where(SearchRow.result_id == Result.id))
        if not everything:
            docs = docs.where(~exists().where(SearchRow.document_id == Document.id, SearchRow.source == "text"))
        if tenant_id is not None:
            docs = docs.where(Document.tenant_id == tenant_id)
            summaries = summaries.where(Result.tenant_id == tenant_id)
        todo = s.execute(docs.order_by(Document.id)).all()
        results = s.execute(summaries.order_by(Result.id)).all()
    done, failed = 0, []
    for doc_id, owner, key in todo:  # one transaction per document: a crash keeps what was done
        try:
            extracted = loads(store.get_bytes(key))
        except (PipelineError, ValueError, KeyError) as exc:
            failed.append(f"document {doc_id}: {exc}")
            continue
        with transaction(sessions) as s:
            search_index(s).index_document(s, owner, doc_id, extracted)
        done += 1
    for result_id, owner, doc_id in results:
        with transaction(sessions) as s:
            search_index(s).index_summary(s, owner, doc_id, result_id, _text(s, result_id))
    return Reindexed(done, len(results), tuple(failed))


def _text(session: Session, result_id: str) -> str:
    return session.scalar(select(Result.text).where(Result.id == result_id)) or ""


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--all", action="store_true", help="rebuild every ready document's rows, not only missing ones")
    ap.add_argument("--tenant", help="only this tenant's documents (its id)")
    args = ap.parse_args(argv)
    from pipeline.settings import DataSettings, mask_url

    try:
        cfg = DataSettings.load()
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    engine = make_engine(cfg.database_url)
    try:
        done = reindex(session_factory(engine), cfg.blob_store(), everything=args.all, tenant_id=args.tenant)
    finally:
        engine.dispose()
    for line in done.failed:
        print(f"skipped {line}", file=sys.stderr)
    print(f"indexed {done.documents} documents and {done.summaries} summaries in {mask_url(cfg.database_url)}")
    return 1 if done.failed else 0


if __name__ == "__main__":
    sys.exit(main())
