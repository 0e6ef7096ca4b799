"""Corpora: named, tenant-owned sets of documents (docs/batches.md). A document may be in several corpora; removing
it from one, or deleting a corpus, never deletes the document. Every read goes through the tenant."""

from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from pipeline.errors import Conflict, NotFound
from pipeline.records.models import Corpus, CorpusDocument, Document
from pipeline.records.owned import get_owned
from pipeline.records.pages import Page, page


def _name_taken(name: str) -> Conflict:
    return Conflict(f"a corpus named {name!r} exists already; pick another name (names are unique per tenant)")


def create_corpus(session: Session, tenant_id: str, name: str) -> Corpus:
    """A new empty corpus; Conflict when the tenant has one of that name."""
    if find_corpus(session, tenant_id, name) is not None:
        raise _name_taken(name)
    corpus = Corpus(tenant_id=tenant_id, name=name)
    try:
        with session.begin_nested():
            session.add(corpus)
    except IntegrityError:  # NOTE: only when two requests create the same name at once
        raise _name_taken(name) from None
    return corpus


def get_corpus(session: Session, tenant_id: str, corpus_id: str) -> Corpus:
    return get_owned(session, Corpus, tenant_id, corpus_id)


def find_corpus(session: Session, tenant_id: str, name: str) -> Corpus | None:
    return session.scalar(select(Corpus).where(Corpus.tenant_id == tenant_id, Corpus.name == name))


def list_corpora(session: Session, tenant_id: str, *, limit: int = 50, after: str | None = None) -> Page[Corpus]:
    """A page of the tenant's corpora, newest first (pipeline.records.pages)."""
    return page(session, select(Corpus).where(Corpus.tenant_id == tenant_id), Corpus, tenant_id, limit=limit,
                after=after)


def rename_corpus(session: Session, tenant_id: str, corpus_id: str, name: str) -> Corpus:
    corpus = get_corpus(session, tenant_id, corpus_id)
    if corpus.name == name:
        return corpus
    if find_corpus(session, tenant_id, name) is not None:
        raise _name_taken(name)
    corpus.name = name
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError:
        raise _name_taken(name) from None
    return corpus


def delete_corpus(session: Session, tenant_id: str, corpus_id: str) -> None:
    """Delete the corpus and its memberships; its documents stay."""
    session.delete(get_corpus(session, tenant_id, corpus_id))
    session.flush()


def document_counts(session: Session, corpus_ids: Sequence[str]) -> dict[str, int]:
    """Documents per corpus, for the ids given (0 for an empty one)."""
    if not corpus_ids:
        return {}
    rows = session.execute(select(CorpusDocument.corpus_id, func.count()).where(
        CorpusDocument.corpus_id.in_(corpus_ids)).group_by(CorpusDocument.corpus_id))
    return {cid: 0 for cid in corpus_ids} | {cid: n for cid, n in rows}


def add_documents(session: Session, tenant_id: str, corpus_id: str, document_ids: Sequence[str]) -> int:
    """Add the tenant's documents to the corpus (one already in it stays as it was); returns how many were new.
    Afterwards every one of them is a member, also when a concurrent request added some of them first.
    NotFound naming the first id the tenant has no document for (nothing is added then)."""
    get_corpus(session, tenant_id, corpus_id)
    wanted = list(dict.fromkeys(document_ids))
    owned = set(session.scalars(select(Document.id).where(Document.tenant_id == tenant_id,
                                                          Document.id.in_(wanted))))
    missing = [d for d in wanted if d not in owned]
    if missing:
        raise NotFound(f"no document {missing[0]!r}" + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""))
    if not wanted:
        return 0
    return _insert_missing(session, corpus_id, wanted)


def _insert_missing(session: Session, corpus_id: str, document_ids: list[str]) -> int:
    """One INSERT … ON CONFLICT DO NOTHING of the memberships (PostgreSQL and SQLite): a row a concurrent add made
    first, committed or about to be, stays as it is and the others still go in. Returns how many went in."""
    insert = {"postgresql": pg_insert, "sqlite": sqlite_insert}[session.get_bind().dialect.name]
    stmt = (insert(CorpusDocument)
            .values([{"corpus_id": corpus_id, "document_id": d} for d in document_ids])
            .on_conflict_do_nothing(index_elements=["corpus_id", "document_id"])
            .returning(CorpusDocument.document_id))
    return len(session.execute(stmt).all())


def remove_document(session: Session, tenant_id: str, corpus_id: str, document_id: str) -> None:
    """Take the document out of the corpus (the document stays); NotFound when it is not in it."""
    get_corpus(session, tenant_id, corpus_id)
    member = session.get(CorpusDocument, (corpus_id, document_id))
    if member is None:
        raise NotFound(f"no document {document_id!r} in corpus {corpus_id!r}")
    session.delete(member)
    session.flush()


def corpus_documents(session: Session, tenant_id: str, corpus_id: str, *, limit: int = 50,
                     after: str | None = None) -> Page[Document]:
    """A page of the corpus's documents, newest first (the documents' own order, pipeline.records.pages)."""
    get_corpus(session, tenant_id, corpus_id)
    q = (select(Document).join(CorpusDocument, CorpusDocument.document_id == Document.id)
         .where(CorpusDocument.corpus_id == corpus_id, Document.tenant_id == tenant_id))
    return page(session, q, Document, tenant_id, limit=limit, after=after)


def all_documents(session: Session, tenant_id: str, corpus_id: str) -> list[Document]:
    """Every document of the corpus, oldest member first (what a batch over the corpus takes at submission)."""
    get_corpus(session, tenant_id, corpus_id)
    return list(session.scalars(
        select(Document).join(CorpusDocument, CorpusDocument.document_id == Document.id)
        .where(CorpusDocument.corpus_id == corpus_id, Document.tenant_id == tenant_id)
        .order_by(CorpusDocument.added_at, Document.id)))
