"""/api/v1/exports"""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Response
from fastapi.responses import FileResponse

from app.routers.deps import API_PREFIX, AUTHENTICATED, ApiRoute, PrincipalDep, SessionDep, problems
from app.schemas.export import ExportCreate, ExportRead
from app.services import exports

router = APIRouter(prefix=API_PREFIX + "/exports", tags=["exports"], route_class=ApiRoute)

_MEDIA_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}


@router.post(
    "",
    operation_id="exports_create",
    status_code=202,
    response_model=ExportRead,
    responses=problems(*AUTHENTICATED),
    summary="Export every matching contact or company to a CSV or XLSX file (written by a job)",
)
async def create_export(
    session: SessionDep, principal: PrincipalDep, body: ExportCreate, response: Response
) -> ExportRead:
    export = await exports.create_export(session, principal, data=body)
    response.headers["Location"] = f"{API_PREFIX}/exports/{export.id}"
    return ExportRead.model_validate(export)


@router.get(
    "/{export_id}", operation_id="exports_get", response_model=ExportRead, responses=problems(*AUTHENTICATED, 404)
)
async def get_export(session: SessionDep, principal: PrincipalDep, export_id: uuid.UUID) -> ExportRead:
    return ExportRead.model_validate(await exports.get_export(session, principal, export_id))


@router.get(
    "/{export_id}/download",
    operation_id="exports_download",
    responses=problems(*AUTHENTICATED, 404, 409, 410) | {200: {"content": {"text/csv": {}, _MEDIA_TYPES["xlsx"]: {}}}},
    summary="The file, once the export is done (409 before, 410 once expired)",
)
async def download_export(session: SessionDep, principal: PrincipalDep, export_id: uuid.UUID) -> FileResponse:
    export, path = await exports.download_path(session, principal, export_id)
    return FileResponse(
        path, media_type=_MEDIA_TYPES[export.format], filename=f"{export.entity}-{export.id}.{export.format}"
    )
