"""/v1/results: the stored output of a summary or answer job; the list, newest first."""

from fastapi import APIRouter

from api.deps import SessionDep, TenantDep
from api.routes.common import DocumentIdQuery, ResultId
from api.routes.conventions import ListDep, operation, page_of
from api.schemas import ResultList, ResultPublic
from pipeline.records.jobs import get_result
from pipeline.records.results import list_results

router = APIRouter(prefix="/v1/results", tags=["results"])


@router.get("", **operation("listResults", "List results, newest first", ResultList))
def list_(session: SessionDep, tenant: TenantDep, page: ListDep, document_id: DocumentIdQuery = None) -> ResultList:
    return page_of(ResultList, list_results(session, tenant.id, document_id=document_id, limit=page.limit,
                                            after=page.after), ResultPublic.model_validate)


@router.get("/{result_id}", **operation("getResult", "Get a result", ResultPublic, codes=(404,)))
def get(result_id: ResultId, session: SessionDep, tenant: TenantDep) -> ResultPublic:
    """Text, citations (each with its verification status) and usage (including cached prompt tokens)."""
    return ResultPublic.model_validate(get_result(session, tenant.id, result_id))
