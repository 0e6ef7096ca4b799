"""/v1/results: the stored output of a summary or answer job."""

from fastapi import APIRouter

from api.deps import SessionDep, TenantDep
from api.routes.common import ResultId
from api.routes.conventions import operation
from api.schemas import ResultPublic
from pipeline.records.jobs import get_result

router = APIRouter(prefix="/v1/results", tags=["results"])


@router.get("/{result_id}", **operation("getResult", "Get a result", ResultPublic, codes=(404,)))
def get(result_id: ResultId, session: SessionDep, tenant: TenantDep) -> ResultPublic:
    """Text, citations (each with its verification status) and usage (including cached prompt tokens)."""
    return ResultPublic.model_validate(get_result(session, tenant.id, result_id))
