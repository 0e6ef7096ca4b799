"""/v1/corpora: named sets of a tenant's documents (create, list, get, rename, delete) and their membership
(docs/batches.md). Deleting a corpus, or taking a document out of one, never deletes the document."""

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse

from api.deps import SessionDep, TenantDep
from api.routes.common import DocumentId, id_path
from api.routes.conventions import IdempotencyDep, ListDep, created, operation, page_of
from api.schemas import DocumentList, DocumentPublic
from api.schemas_batches import (
    CorpusCreate,
    CorpusDocumentsAdd,
    CorpusDocumentsAdded,
    CorpusList,
    CorpusPublic,
    CorpusUpdate,
)
from pipeline.logs import get_logger
from pipeline.records import corpora
from pipeline.records.models import Corpus

log = get_logger(__name__)
router = APIRouter(prefix="/v1/corpora", tags=["corpora"])
CorpusId = id_path("corpus")


def corpus_public(session, corpus: Corpus) -> CorpusPublic:
    count = corpora.document_counts(session, [corpus.id])[corpus.id]
    return CorpusPublic.model_validate(corpus).model_copy(update={"document_count": count})


@router.post("", **operation("createCorpus", "Create a corpus", CorpusPublic, status=201,
                             codes=(400, 409, 413)))
def create(body: CorpusCreate, session: SessionDep, tenant: TenantDep, idem: IdempotencyDep) -> JSONResponse:
    """A new, empty corpus; 409 when the tenant has one of that name."""
    request_body = body.model_dump(mode="json")
    if (replay := idem.replay(session, tenant.id, request_body)) is not None:
        return replay
    corpus = corpora.create_corpus(session, tenant.id, body.name)
    response = created(corpus_public(session, corpus), f"/v1/corpora/{corpus.id}")
    if (raced := idem.commit(session, tenant.id, request_body, response)) is not None:
        return raced
    log.info("corpus created", corpus_id=corpus.id)
    return response


@router.get("", **operation("listCorpora", "List corpora, newest first", CorpusList))
def list_(session: SessionDep, tenant: TenantDep, page: ListDep) -> CorpusList:
    found = corpora.list_corpora(session, tenant.id, limit=page.limit, after=page.after)
    counts = corpora.document_counts(session, [c.id for c in found.rows])
    return page_of(CorpusList, found, lambda c: CorpusPublic.model_validate(c).model_copy(
        update={"document_count": counts[c.id]}))


@router.get("/{corpus_id}", **operation("getCorpus", "Get a corpus", CorpusPublic, codes=(404,)))
def get(corpus_id: CorpusId, session: SessionDep, tenant: TenantDep) -> CorpusPublic:
    return corpus_public(session, corpora.get_corpus(session, tenant.id, corpus_id))


@router.patch("/{corpus_id}", **operation("updateCorpus", "Rename a corpus", CorpusPublic,
                                          codes=(400, 404, 409, 413)))
def update(corpus_id: CorpusId, body: CorpusUpdate, session: SessionDep, tenant: TenantDep) -> CorpusPublic:
    corpus = corpora.rename_corpus(session, tenant.id, corpus_id, body.name)
    out = corpus_public(session, corpus)
    session.commit()
    return out


@router.delete("/{corpus_id}", **operation("deleteCorpus", "Delete a corpus (its documents stay)", status=204,
                                           codes=(404,)), response_class=Response)
def delete(corpus_id: CorpusId, session: SessionDep, tenant: TenantDep) -> Response:
    corpora.delete_corpus(session, tenant.id, corpus_id)
    session.commit()
    return Response(status_code=204)


@router.post("/{corpus_id}/documents", **operation("addCorpusDocuments", "Add documents to a corpus",
                                                   CorpusDocumentsAdded, codes=(400, 404, 409, 413)))
def add_documents(corpus_id: CorpusId, body: CorpusDocumentsAdd, session: SessionDep, tenant: TenantDep,
                  idem: IdempotencyDep) -> JSONResponse:
    """Add the tenant's documents (ready or not) to the corpus; one already in it stays as it was. 404 naming a
    document id the tenant has none of (then nothing is added)."""
    request_body = body.model_dump(mode="json")
    if (replay := idem.replay(session, tenant.id, request_body)) is not None:
        return replay
    added = corpora.add_documents(session, tenant.id, corpus_id, body.document_ids)
    corpus = corpora.get_corpus(session, tenant.id, corpus_id)
    out = CorpusDocumentsAdded(corpus=corpus_public(session, corpus), added=added)
    response = JSONResponse(out.model_dump(mode="json"))
    if (raced := idem.commit(session, tenant.id, request_body, response)) is not None:
        return raced
    return response


@router.get("/{corpus_id}/documents", **operation("listCorpusDocuments", "List a corpus's documents, newest first",
                                                  DocumentList, codes=(404,)))
def list_documents(corpus_id: CorpusId, session: SessionDep, tenant: TenantDep, page: ListDep) -> DocumentList:
    found = corpora.corpus_documents(session, tenant.id, corpus_id, limit=page.limit, after=page.after)
    return page_of(DocumentList, found, DocumentPublic.model_validate)


@router.delete("/{corpus_id}/documents/{document_id}",
               **operation("removeCorpusDocument", "Take a document out of a corpus (the document stays)",
                           status=204, codes=(404,)), response_class=Response)
def remove_document(corpus_id: CorpusId, document_id: DocumentId, session: SessionDep, tenant: TenantDep
                    ) -> Response:
    corpora.remove_document(session, tenant.id, corpus_id, document_id)
    session.commit()
    return Response(status_code=204)
