"""/api/v1/teams"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Response

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
from app.schemas.team import TeamCreate, TeamPage, TeamRead, TeamUpdate
from app.services import teams

router = APIRouter(prefix=API_PREFIX + "/teams", tags=["teams"], route_class=ApiRoute)
Reader = Annotated[Principal, require(Scope.teams_read)]
Writer = Annotated[Principal, require(Scope.teams_write)]


def _read(found: teams.TeamWithMembers) -> TeamRead:
    team = found.team
    return TeamRead(
        id=team.id,
        name=team.name,
        description=team.description,
        member_ids=found.member_ids,
        created_at=team.created_at,
        updated_at=team.updated_at,
        version=team.version,
    )


@router.get(
    "",
    operation_id="teams_list",
    response_model=TeamPage,
    responses=problems(*AUTHENTICATED),
)
async def list_teams(
    session: SessionDep,
    principal: Reader,
    cursor: CursorDep = None,
    limit: LimitDep = DEFAULT_LIMIT,
) -> TeamPage:
    page = await teams.list_teams(session, principal, cursor=cursor, limit=limit)
    return TeamPage(items=[_read(t) for t in page.items], next_cursor=page.next_cursor)


@router.post(
    "",
    operation_id="teams_create",
    status_code=201,
    response_model=TeamRead,
    responses=problems(*AUTHENTICATED, 409),
)
async def create_team(session: SessionDep, principal: Writer, body: TeamCreate) -> Response:
    found = await teams.create_team(session, principal, data=body)
    return record_reply(_read(found), status_code=201, location=f"/api/v1/teams/{found.team.id}")


@router.get(
    "/{team_id}",
    operation_id="teams_get",
    response_model=TeamRead,
    responses=problems(*AUTHENTICATED, 404),
)
async def get_team(session: SessionDep, principal: Reader, team_id: uuid.UUID) -> Response:
    found = await teams.get_team(session, principal, team_id)
    return record_reply(_read(found))


@router.patch(
    "/{team_id}",
    operation_id="teams_update",
    response_model=TeamRead,
    responses=problems(*AUTHENTICATED, 404, 409, 412),
)
async def update_team(
    session: SessionDep,
    principal: Writer,
    team_id: uuid.UUID,
    body: TeamUpdate,
    version: ExpectedVersionDep,
) -> Response:
    found = await teams.update_team(session, principal, team_id, data=body, expected_version=version)
    return record_reply(_read(found))


@router.delete(
    "/{team_id}",
    operation_id="teams_delete",
    status_code=204,
    responses=problems(*AUTHENTICATED, 404, 412),
)
async def delete_team(
    session: SessionDep,
    principal: Writer,
    team_id: uuid.UUID,
    version: ExpectedVersionDep,
) -> Response:
    await teams.delete_team(session, principal, team_id, expected_version=version)
    return Response(status_code=204)
