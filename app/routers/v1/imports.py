"""/api/v1/imports"""

from __future__ import annotations

import uuid
from typing import Annotated

import orjson
from fastapi import APIRouter, File, Form, Request, Response, UploadFile
from fastapi.responses import StreamingResponse
from pydantic import ValidationError

from app.core.errors import FieldError, ValidationFailed
from app.routers.deps import API_PREFIX, AUTHENTICATED, ApiRoute, PrincipalDep, SessionDep, problems
from app.schemas.data_import import ImportCreate, ImportRead
from app.services import imports

router = APIRouter(prefix=API_PREFIX + "/imports", tags=["imports"], route_class=ApiRoute)


def _form(entity: str, mode: str, mapping: str | None) -> ImportCreate:
    try:
        parsed = orjson.loads(mapping) if mapping else None
    except orjson.JSONDecodeError as exc:
        raise ValidationFailed(FieldError(("body", "mapping"), f"not JSON: {exc}")) from exc
    try:
        return ImportCreate.model_validate({"entity": entity, "mode": mode, "mapping": parsed})
    except ValidationError as exc:
        raise ValidationFailed.from_pydantic(exc, loc=("body",)) from exc


@router.post(
    "",
    operation_id="imports_create",
    status_code=202,
    response_model=ImportRead,
    responses=problems(*AUTHENTICATED, 413),
    summary="Import contacts, companies or deals from a CSV or XLSX file (written by a job)",
)
async def create_import(
    session: SessionDep,
    principal: PrincipalDep,
    response: Response,
    file: Annotated[UploadFile, File(description="CSV (UTF-8, UTF-8 with BOM, GB18030/GBK) or XLSX")],
    entity: Annotated[str, Form(description="contacts | companies | deals")],
    mode: Annotated[str, Form(description="create | upsert | skip_duplicates")] = "create",
    mapping: Annotated[str | None, Form(description='JSON {"column header": "field"}; automatic when omitted')] = None,
) -> ImportRead:
    data_import = await imports.create_import(
        session, principal, data=_form(entity, mode, mapping), file=file.file, file_name=file.filename or ""
    )
    response.headers["Location"] = f"{API_PREFIX}/imports/{data_import.id}"
    return ImportRead.model_validate(data_import)


@router.get(
    "/{import_id}", operation_id="imports_get", response_model=ImportRead, responses=problems(*AUTHENTICATED, 404)
)
async def get_import(session: SessionDep, principal: PrincipalDep, import_id: uuid.UUID) -> ImportRead:
    return ImportRead.model_validate(await imports.get_import(session, principal, import_id))


@router.get(
    "/{import_id}/errors",
    operation_id="imports_errors",
    responses=problems(*AUTHENTICATED, 404) | {200: {"content": {"text/csv": {}}}},
    summary="The failed and skipped rows as CSV: row, outcome, reason, then the row's own cells",
)
async def import_errors(
    request: Request, session: SessionDep, principal: PrincipalDep, import_id: uuid.UUID
) -> StreamingResponse:
    lines = await imports.issues_csv(session, principal, import_id, request.app.state.session_factory)
    return StreamingResponse(
        lines,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="import-{import_id}-errors.csv"'},
    )


@router.post(
    "/{import_id}/cancel",
    operation_id="imports_cancel",
    response_model=ImportRead,
    responses=problems(*AUTHENTICATED, 404, 409),
    summary="Stop the import after the chunk being written (rows already written stay)",
)
async def cancel_import(session: SessionDep, principal: PrincipalDep, import_id: uuid.UUID) -> ImportRead:
    return ImportRead.model_validate(await imports.cancel_import(session, principal, import_id))
