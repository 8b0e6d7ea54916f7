"""/api/v1/custom-fields"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Response

from app.core.enums import CustomFieldEntity
from app.core.pagination import DEFAULT_LIMIT
from app.core.permissions import Scope
from app.core.principal import Principal
from app.routers.deps import (
    API_PREFIX,
    AUTHENTICATED,
    ApiRoute,
    CursorDep,
    ExpectedVersionDep,
    LimitDep,
    SessionDep,
    problems,
    record_reply,
    require,
)
from app.schemas.custom_field import (
    CustomFieldCreate,
    CustomFieldPage,
    CustomFieldRead,
    CustomFieldUpdate,
)
from app.services import custom_fields

router = APIRouter(prefix=API_PREFIX + "/custom-fields", tags=["custom-fields"], route_class=ApiRoute)
Reader = Annotated[Principal, require(Scope.custom_fields_read)]
Writer = Annotated[Principal, require(Scope.custom_fields_write)]


@router.get(
    "",
    operation_id="custom_fields_list",
    response_model=CustomFieldPage,
    responses=problems(*AUTHENTICATED),
)
async def list_custom_fields(
    session: SessionDep,
    principal: Reader,
    entity: CustomFieldEntity | None = None,
    cursor: CursorDep = None,
    limit: LimitDep = DEFAULT_LIMIT,
) -> CustomFieldPage:
    page = await custom_fields.list_definitions(session, principal, entity=entity, cursor=cursor, limit=limit)
    return CustomFieldPage(
        items=[CustomFieldRead.model_validate(d) for d in page.items],
        next_cursor=page.next_cursor,
    )


@router.post(
    "",
    operation_id="custom_fields_create",
    status_code=201,
    response_model=CustomFieldRead,
    responses=problems(*AUTHENTICATED, 409),
)
async def create_custom_field(session: SessionDep, principal: Writer, body: CustomFieldCreate) -> Response:
    definition = await custom_fields.create_definition(session, principal, data=body)
    return record_reply(
        CustomFieldRead.model_validate(definition), status_code=201, location=f"/api/v1/custom-fields/{definition.id}"
    )


@router.get(
    "/{field_id}",
    operation_id="custom_fields_get",
    response_model=CustomFieldRead,
    responses=problems(*AUTHENTICATED, 404),
)
async def get_custom_field(session: SessionDep, principal: Reader, field_id: uuid.UUID) -> Response:
    definition = await custom_fields.get_definition(session, principal, field_id)
    return record_reply(CustomFieldRead.model_validate(definition))


@router.patch(
    "/{field_id}",
    operation_id="custom_fields_update",
    response_model=CustomFieldRead,
    responses=problems(*AUTHENTICATED, 404, 412),
)
async def update_custom_field(
    session: SessionDep,
    principal: Writer,
    field_id: uuid.UUID,
    body: CustomFieldUpdate,
    version: ExpectedVersionDep,
) -> Response:
    definition = await custom_fields.update_definition(
        session, principal, field_id, data=body, expected_version=version
    )
    return record_reply(CustomFieldRead.model_validate(definition))


@router.delete(
    "/{field_id}",
    operation_id="custom_fields_delete",
    status_code=204,
    responses=problems(*AUTHENTICATED, 404, 412),
    summary="Delete a custom field and remove its values from every record",
)
async def delete_custom_field(
    session: SessionDep,
    principal: Writer,
    field_id: uuid.UUID,
    version: ExpectedVersionDep,
) -> Response:
    await custom_fields.delete_definition(session, principal, field_id, expected_version=version)
    return Response(status_code=204)
