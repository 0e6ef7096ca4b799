"""Corpus membership (pipeline.records.corpora.add_documents): adding is idempotent per document, so when a concurrent
request makes one of the memberships first, every other document of the add still becomes a member. On SQLite and
PostgreSQL (tests/pipeline/conftest.py); the race where the other request is still open is PostgreSQL only."""

import threading

import pytest
from sqlalchemy import event, insert, select, text

from pipeline.records.corpora import add_documents, all_documents, create_corpus
from pipeline.records.db import make_engine, session_factory, transaction
from pipeline.records.documents import create_document
from pipeline.records.models import CorpusDocument, new_id
from pipeline.records.tenants import create_tenant
from tests.helpers.wait import wait_until


def corpus_with_documents(sessions, n: int) -> tuple[str, str, list[str]]:
    """(tenant id, an empty corpus's id, n documents' ids)."""
    with transaction(sessions) as s:
        tenant = create_tenant(s, f"t-{new_id()}")
        corpus = create_corpus(s, tenant.id, "reports")
        docs = [create_document(s, tenant.id, kind="pdf", blob_key=f"k/{new_id()}", sha256=new_id() * 2,
                                size_bytes=1).id for _ in range(n)]
        return tenant.id, corpus.id, docs


def members(sessions, corpus_id: str) -> set[str]:
    with transaction(sessions) as s:
        return set(s.scalars(select(CorpusDocument.document_id).where(CorpusDocument.corpus_id == corpus_id)))


def test_add_counts_only_new_members_and_a_member_keeps_when_it_joined(db):
    tenant, corpus, (a, b, c) = corpus_with_documents(db, 3)
    with transaction(db) as s:
        assert add_documents(s, tenant, corpus, [b]) == 1
    with transaction(db) as s:
        assert add_documents(s, tenant, corpus, [c, b, a, c]) == 2
    with transaction(db) as s:
        assert add_documents(s, tenant, corpus, [a, b, c]) == 0
        assert add_documents(s, tenant, corpus, []) == 0
        joined = [d.id for d in all_documents(s, tenant, corpus)]  # oldest member first: b joined before the others
        assert joined[0] == b and sorted(joined[1:]) == sorted([a, c])


def test_a_membership_committed_between_the_read_and_the_insert_loses_no_other_document(db_url):
    """The other request commits document X's membership just before this add's INSERT reaches the database (forced
    by a cursor event on this add's engine, so the interleaving is the same every run): X stays as it was, Y and Z
    still become members, and the count says 2."""
    engine, other = make_engine(db_url), make_engine(db_url)
    try:
        sessions = session_factory(engine)
        tenant, corpus, (x, y, z) = corpus_with_documents(sessions, 3)
        raced = []

        def commit_x_first(_conn, _cursor, statement, *_):
            if not raced and statement.lstrip().upper().startswith("INSERT INTO CORPUS_DOCUMENTS"):
                raced.append(statement)
                with other.begin() as conn:
                    conn.execute(insert(CorpusDocument).values(corpus_id=corpus, document_id=x))

        event.listen(engine, "before_cursor_execute", commit_x_first)
        with transaction(sessions) as s:
            added = add_documents(s, tenant, corpus, [x, y, z])
        assert raced, "the add never inserted a membership"
        assert members(sessions, corpus) == {x, y, z}
        assert added == 2
    finally:
        engine.dispose()
        other.dispose()


@pytest.mark.services
def test_an_add_waiting_on_an_open_concurrent_add_of_one_document_still_adds_the_others(pg_url):
    """PostgreSQL: the other transaction has inserted X and not committed; this add's INSERT waits on it (seen in
    pg_locks), the other commits, and this add then inserts Y and Z and counts 2."""
    engine, other = make_engine(pg_url), make_engine(pg_url)
    try:
        sessions = session_factory(engine)
        tenant, corpus, (x, y, z) = corpus_with_documents(sessions, 3)
        result: dict = {}
        with other.connect() as holder:
            holder.execute(insert(CorpusDocument).values(corpus_id=corpus, document_id=x))  # open, not committed
            holder_pid = holder.execute(text("SELECT pg_backend_pid()")).scalar_one()

            def add() -> None:
                try:
                    with transaction(sessions) as s:
                        result["added"] = add_documents(s, tenant, corpus, [x, y, z])
                except Exception as exc:  # noqa: BLE001 - reported by the assertion below
                    result["error"] = exc

            adder = threading.Thread(target=add)
            adder.start()

            def blocked_by_holder() -> bool:
                with other.connect() as watcher:  # a new transaction per look: pg_stat_activity is read once in one
                    return watcher.execute(text("SELECT count(*) FROM pg_stat_activity "
                                                "WHERE :pid = ANY(pg_blocking_pids(pid))"),
                                           {"pid": holder_pid}).scalar_one() > 0

            wait_until(blocked_by_holder, timeout=30, what="the add to wait on the open insert")
            holder.commit()
        adder.join(timeout=30)
        assert not adder.is_alive()
        assert "error" not in result, result
        assert members(sessions, corpus) == {x, y, z}
        assert result["added"] == 2
    finally:
        engine.dispose()
        other.dispose()
