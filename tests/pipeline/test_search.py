"""The full-text index (pipeline.search): every test runs on SQLite (FTS5) and on PostgreSQL (tsvector + GIN), through
the one interface, on the migrated databases of tests/pipeline/conftest.py."""

from datetime import timedelta

import pytest
from sqlalchemy import func, select, text

from pipeline.document import ExtractedDocument, Kind, Section
from pipeline.records import jobs
from pipeline.records.corpora import add_documents, create_corpus
from pipeline.records.db import make_engine, session_factory, transaction
from pipeline.records.documents import create_document, delete_document, mark_document_ready
from pipeline.records.models import Document, Result, SearchRow, new_id
from pipeline.records.tenants import create_tenant
from pipeline.records.types import utcnow
from pipeline.search import Scope, search_index
from pipeline.search import index as search_module

FILLER = ("The quarterly report describes operations, staffing, suppliers and the general outlook of the company. "
          "Nothing in this paragraph is specific to any single question. ")


def pdf(*pages: str, title: str | None = None) -> ExtractedDocument:
    sections = tuple(Section(i, str(i + 1), "text", f"[page {i + 1}]\n{p}\n") for i, p in enumerate(pages))
    return ExtractedDocument(Kind.PDF, "".join(s.text for s in sections), sections, {"title": title} if title else {})


def codebase(files: dict[str, str]) -> ExtractedDocument:
    sections = tuple(Section(i, path, "text", f"===== {path} =====\n{body}\n") for i, (path, body) in
                     enumerate(files.items()))
    return ExtractedDocument(Kind.CODEBASE, "".join(s.text for s in sections), sections)


def tenant(db) -> str:
    with transaction(db) as s:
        return create_tenant(s, f"t-{new_id()}").id


def add(db, tenant_id: str, doc: ExtractedDocument, *, created_at=None) -> str:
    """A ready document with `doc` indexed, as ingest leaves it."""
    with transaction(db) as s:
        row = create_document(s, tenant_id, kind=doc.kind.value, blob_key=f"tenants/{tenant_id}/blobs/x/{new_id()}",
                              sha256=new_id() * 2, size_bytes=len(doc.text))
        if created_at is not None:
            row.created_at = created_at
        mark_document_ready(s, row.id, text_blob_key="k", num_sections=len(doc.sections), num_tokens=len(doc.text))
        search_index(s).index_document(s, tenant_id, row.id, doc)
        return row.id


def search(db, scope: Scope, question: str):
    with db() as s:
        return search_index(s).search(s, scope, question)


def ids(result) -> list[str]:
    return [h.document_id for h in result.hits]


def test_the_document_holding_the_fact_ranks_first_with_its_terms_and_page(db):
    t = tenant(db)
    fact = add(db, t, pdf(FILLER * 3, FILLER + "The Zanzibar facility produced 4711 widgets in 2025.", FILLER))
    other = add(db, t, pdf(*(FILLER * 5 for _ in range(12))))
    add(db, t, pdf("Recipes for bread, cakes and pastry.", "Flour, water and salt."))
    result = search(db, Scope(t), "How many widgets did the Zanzibar facility produce?")
    top = result.hits[0]
    assert top.document_id == fact
    assert {"zanzibar", "widgets", "facility"} <= set(top.matched_terms)
    assert top.matched_terms[0] in {"zanzibar", "widgets", "facility"}  # rare terms weigh most
    assert top.anchors[0] == "2"
    assert other not in ids(result)  # it shares only words in most pages ("the"), which are left out
    assert "the" in result.ignored_terms and "zanzibar" in result.terms


def test_common_words_rank_when_the_question_has_nothing_else(db):
    t = tenant(db)
    few = add(db, t, pdf("the report of the board"))
    many = add(db, t, pdf("the the the report"))
    result = search(db, Scope(t), "the report")  # both terms are in every row: they are all there is to rank by
    assert set(ids(result)) == {few, many} and result.ignored_terms == ()
    assert result.hits[0].matched_terms[0] in ("the", "report")


def test_another_tenants_documents_are_never_returned_even_when_they_match_better(db):
    mine, theirs = tenant(db), tenant(db)
    my_doc = add(db, mine, pdf(FILLER + "a passing mention of quokka"))
    add(db, theirs, pdf("quokka quokka quokka habitat quokka population quokka " * 20))
    result = search(db, Scope(mine), "quokka habitat and population")
    assert ids(result) == [my_doc]
    assert search(db, Scope(tenant(db)), "quokka habitat").hits == ()


def test_scope_by_corpus_kind_and_upload_date(db):
    t = tenant(db)
    old = add(db, t, pdf("the heliograph signal protocol"), created_at=utcnow() - timedelta(days=30))
    new_pdf = add(db, t, pdf("heliograph maintenance notes"))
    code = add(db, t, codebase({"src/heliograph.py": "def heliograph_signal():\n    return 1\n"}))
    with transaction(db) as s:
        corpus = create_corpus(s, t, f"c-{new_id()}")
        add_documents(s, t, corpus.id, [old, code])
    assert set(ids(search(db, Scope(t), "heliograph"))) == {old, new_pdf, code}
    assert set(ids(search(db, Scope(t, corpus_id=corpus.id), "heliograph"))) == {old, code}
    assert ids(search(db, Scope(t, kinds=("codebase",)), "heliograph")) == [code]
    week_ago = utcnow() - timedelta(days=7)
    assert set(ids(search(db, Scope(t, uploaded_after=week_ago), "heliograph"))) == {new_pdf, code}
    assert ids(search(db, Scope(t, uploaded_before=week_ago), "heliograph")) == [old]
    assert ids(search(db, Scope(t, corpus_id=corpus.id, kinds=("pdf",)), "heliograph")) == [old]


def test_a_document_over_1_mb_of_text_is_indexed_in_rows_and_scored_once(db):
    t = tenant(db)
    pages = [f"Page {i} of the archive: " + FILLER * 20 + f"serial{i:05d}" for i in range(400)]
    pages[-1] += " The final ledger mentions obsidian turbines."
    big = pdf(*pages)
    assert len(big.text.encode()) > 1_000_000
    big_id = add(db, t, big)
    with db() as s:
        rows = s.scalar(select(func.count()).select_from(SearchRow).where(SearchRow.document_id == big_id))
    assert rows >= 400
    small = add(db, t, pdf("turbines of many kinds are listed here"))
    result = search(db, Scope(t), "obsidian turbines")
    assert ids(result) == [big_id, small]  # one hit per document, however many rows matched
    assert result.hits[0].matched_terms == ("obsidian", "turbines") and result.hits[0].anchors[0] == "400"


def test_a_single_long_file_is_split_into_rows(db):
    t = tenant(db)
    body = "\n".join(f"value_{i} = compute({i})" for i in range(60_000)) + "\nneedle_marker = True\n"
    doc_id = add(db, t, codebase({"data/generated.py": body, "README.md": "a small readme"}))
    with db() as s:
        anchors = s.scalars(select(SearchRow.anchor).where(SearchRow.document_id == doc_id)).all()
    assert anchors.count("data/generated.py") > 10
    hit = search(db, Scope(t), "needle marker").hits[0]
    assert (hit.document_id, hit.anchors[0]) == (doc_id, "data/generated.py")


def test_deleting_a_document_removes_its_rows(db, db_url):
    t = tenant(db)
    keep = add(db, t, pdf("the lighthouse keeper's log"))
    gone = add(db, t, pdf("the lighthouse was decommissioned"))
    assert set(ids(search(db, Scope(t), "lighthouse"))) == {keep, gone}
    with transaction(db) as s:
        delete_document(s, t, gone)
    with db() as s:
        assert s.scalar(select(func.count()).select_from(SearchRow).where(SearchRow.document_id == gone)) == 0
        if db_url.startswith("sqlite"):  # the FTS5 table follows (its triggers), not only the rows table
            n = s.scalar(text("SELECT count(*) FROM search_fts WHERE search_fts MATCH 'decommissioned'"))
            assert n == 0
    assert ids(search(db, Scope(t), "lighthouse decommissioned")) == [keep]


def test_remove_document_and_reindexing_replace_rows(db):
    t = tenant(db)
    doc_id = add(db, t, pdf("first version mentions basalt"))
    with transaction(db) as s:
        search_index(s).index_document(s, t, doc_id, pdf("second version mentions granite"))
    assert search(db, Scope(t), "basalt").hits == ()
    assert ids(search(db, Scope(t), "granite")) == [doc_id]
    with transaction(db) as s:
        assert search_index(s).remove_document(s, doc_id) == 1
    assert search(db, Scope(t), "granite").hits == ()


def _summary(db, tenant_id: str, document_id: str, summary: str) -> str:
    """A summary job finished the way the worker finishes it (jobs.finish_job indexes the summary)."""
    with transaction(db) as s:
        job = jobs.create_job(s, tenant_id, "summarize", document_id=document_id, params={"style": "brief"})
    with transaction(db) as s:
        jobs.claim_job(s, job.id, "w1", 60)
    with transaction(db) as s:
        return jobs.finish_job(s, job.id, "w1", text=summary).id


def test_summaries_are_indexed_and_weigh_in_the_score(db):
    t = tenant(db)
    plain = add(db, t, pdf("minutes of the board: dividend policy discussed"))
    summarized = add(db, t, pdf("minutes of the board: dividend policy discussed"))
    result_id = _summary(db, t, summarized, "The board set the dividend policy for the next year.")
    result = search(db, Scope(t), "dividend policy")
    assert ids(result) == [summarized, plain]
    assert result.hits[0].score > result.hits[1].score
    only_in_summary = search(db, Scope(t), "next year")
    assert ids(only_in_summary)[0] == summarized
    with transaction(db) as s:  # a summary's rows go with it
        s.delete(s.get(Result, result_id))
    with db() as s:
        assert s.scalar(select(func.count()).select_from(SearchRow).where(SearchRow.result_id == result_id)) == 0
    first, second = search(db, Scope(t), "dividend policy").hits
    assert first.score == pytest.approx(second.score)  # the same pages, and no summary any more


def test_questions_with_query_syntax_are_plain_words(db):
    t = tenant(db)
    doc_id = add(db, t, pdf("NEAR the AND gate, NOT the OR gate: column:value pairs and star* wildcards"))
    for question in ['"unbalanced', "NEAR(a b)", "gate AND NOT OR", "column:value", "star*", "a'); DROP TABLE x;--",
                     "!&|<->:*"]:
        search(db, Scope(t), question)  # never a syntax error
    assert ids(search(db, Scope(t), "gate AND NOT OR")) == [doc_id]
    assert search(db, Scope(t), "?!... ---").hits == ()
    assert search(db, Scope(t), "").terms == ()


def test_terms_too_common_for_the_row_budget_are_left_out_and_reported(db, monkeypatch):
    t = tenant(db)
    for i in range(6):
        add(db, t, pdf(f"common words everywhere, document {i}"))
    rare = add(db, t, pdf("common words and one rare chrysoberyl"))
    monkeypatch.setattr(search_module, "MAX_CANDIDATE_ROWS", 3)
    result = search(db, Scope(t), "common chrysoberyl")
    assert result.ignored_terms == ("common",)
    assert ids(result) == [rare] and result.hits[0].matched_terms == ("chrysoberyl",)


def test_documents_not_ready_are_not_searched(db):
    t = tenant(db)
    doc_id = add(db, t, pdf("a pending ocelot"))
    with transaction(db) as s:
        s.get(Document, doc_id).status = "pending"
    assert search(db, Scope(t), "ocelot").hits == ()


@pytest.mark.services
def test_both_backends_give_the_same_scores(sqlite_url, pg_url):
    docs = [pdf(FILLER, "amber harbour cranes unloaded 300 containers"), pdf("harbour fees for cranes"),
            codebase({"cranes.py": "def harbour_crane(): pass\n"}), pdf(FILLER * 4)]
    results = []
    for url in (sqlite_url, pg_url):
        engine = make_engine(url)
        db = session_factory(engine)
        t = tenant(db)
        order = [add(db, t, d) for d in docs]
        result = search(db, Scope(t), "How many containers did the harbour cranes unload?")
        results.append([(order.index(h.document_id), round(h.score, 6), h.matched_terms) for h in result.hits])
        engine.dispose()
    assert results[0] == results[1] and len(results[0]) >= 2


def test_reindex_fills_in_documents_and_summaries_without_rows(db, tmp_path):
    """Documents ingested before the index existed (no rows) and their summaries are indexed by the reindex command's
    function; a second run finds nothing to do."""
    from pipeline.document_json import dumps
    from pipeline.search.reindex import reindex
    from pipeline.storage.factory import blob_store_from_url

    store = blob_store_from_url(f"file://{tmp_path / 'blobs'}")
    t = tenant(db)
    doc = pdf("an old document about tourmaline")
    ref = store.put_bytes(t, dumps(doc))
    with transaction(db) as s:
        row = create_document(s, t, kind="pdf", blob_key=ref.key, sha256=ref.sha256, size_bytes=1)
        mark_document_ready(s, row.id, text_blob_key=ref.key, num_sections=1, num_tokens=10)
        job = jobs.create_job(s, t, "summarize", document_id=row.id, params={"style": "brief"})
        s.add(Result(tenant_id=t, job_id=job.id, document_id=row.id, kind="summarize", text="About garnets too."))
        doc_id = row.id
    assert search(db, Scope(t), "tourmaline").hits == ()
    assert reindex(db, store, tenant_id=t) == (1, 1, ())
    assert ids(search(db, Scope(t), "tourmaline")) == [doc_id] and ids(search(db, Scope(t), "garnets")) == [doc_id]
    assert reindex(db, store, tenant_id=t) == (0, 0, ())
    with db() as s:
        before = s.scalar(select(func.count()).select_from(SearchRow).where(SearchRow.document_id == doc_id))
    assert reindex(db, store, everything=True, tenant_id=t) == (1, 0, ())
    with db() as s:  # rebuilt, not doubled
        assert s.scalar(select(func.count()).select_from(SearchRow).where(SearchRow.document_id == doc_id)) == before
    with transaction(db) as s:  # a document whose text blob is gone is reported, and the others still go on
        row = create_document(s, t, kind="pdf", blob_key=ref.key, sha256=ref.sha256, size_bytes=1)
        mark_document_ready(s, row.id, text_blob_key=f"tenants/{t}/blobs/sha256/{'0' * 64}", num_sections=1,
                            num_tokens=1)
    done = reindex(db, store, tenant_id=t)
    assert done.documents == 0 and len(done.failed) == 1 and row.id in done.failed[0]
