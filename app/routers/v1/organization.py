"""/api/v1/organization: the caller's own organisation and its settings."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Response

from app.core.permissions import Scope
from app.core.principal import Principal
from app.routers.deps import (
    API_PREFIX,
    AUTHENTICATED,
    ApiRoute,
    ExpectedVersionDep,
    SessionDep,
    problems,
    record_reply,
    require,
)
from app.schemas.organization import OrganizationRead, OrganizationUpdate
from app.services import organizations

router = APIRouter(prefix=API_PREFIX + "/organization", tags=["organization"], route_class=ApiRoute)


@router.get(
    "",
    operation_id="organization_get",
    response_model=OrganizationRead,
    responses=problems(*AUTHENTICATED),
)
async def get_organization(
    session: SessionDep,
    principal: Annotated[Principal, require(Scope.organization_read)],
) -> Response:
    organization = await organizations.get_organization(session, principal)
    return record_reply(OrganizationRead.model_validate(organization))


@router.patch(
    "",
    operation_id="organization_update",
    response_model=OrganizationRead,
    responses=problems(*AUTHENTICATED, 412),
)
async def update_organization(
    session: SessionDep,
    principal: Annotated[Principal, require(Scope.organization_write)],
    body: OrganizationUpdate,
    version: ExpectedVersionDep,
) -> Response:
    organization = await organizations.update_organization(session, principal, data=body, expected_version=version)
    return record_reply(OrganizationRead.model_validate(organization))
