"""/api/v1/users"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Response

from app.core.pagination import DEFAULT_LIMIT
from app.core.permissions import Role, Scope
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
from app.schemas.user import UserCreate, UserPage, UserRead, UserUpdate
from app.services import users

router = APIRouter(prefix=API_PREFIX + "/users", tags=["users"], route_class=ApiRoute)
Reader = Annotated[Principal, require(Scope.users_read)]
Writer = Annotated[Principal, require(Scope.users_write)]


@router.get(
    "",
    operation_id="users_list",
    response_model=UserPage,
    responses=problems(*AUTHENTICATED),
)
async def list_users(
    session: SessionDep,
    principal: Reader,
    role: Role | None = None,
    is_active: bool | None = None,
    cursor: CursorDep = None,
    limit: LimitDep = DEFAULT_LIMIT,
) -> UserPage:
    page = await users.list_users(session, principal, role=role, is_active=is_active, cursor=cursor, limit=limit)
    return UserPage(
        items=[UserRead.model_validate(u) for u in page.items],
        next_cursor=page.next_cursor,
    )


@router.post(
    "",
    operation_id="users_create",
    status_code=201,
    response_model=UserRead,
    responses=problems(*AUTHENTICATED, 409),
)
async def create_user(session: SessionDep, principal: Writer, body: UserCreate) -> Response:
    user = await users.create_user(session, principal, data=body)
    return record_reply(UserRead.model_validate(user), status_code=201, location=f"/api/v1/users/{user.id}")


@router.get(
    "/{user_id}",
    operation_id="users_get",
    response_model=UserRead,
    responses=problems(*AUTHENTICATED, 404),
)
async def get_user(session: SessionDep, principal: Reader, user_id: uuid.UUID) -> Response:
    user = await users.get_user(session, principal, user_id)
    return record_reply(UserRead.model_validate(user))


@router.patch(
    "/{user_id}",
    operation_id="users_update",
    response_model=UserRead,
    responses=problems(*AUTHENTICATED, 404, 409, 412),
)
async def update_user(
    session: SessionDep,
    principal: Writer,
    user_id: uuid.UUID,
    body: UserUpdate,
    version: ExpectedVersionDep,
) -> Response:
    user = await users.update_user(session, principal, user_id, data=body, expected_version=version)
    return record_reply(UserRead.model_validate(user))


@router.post(
    "/{user_id}/deactivate",
    operation_id="users_deactivate",
    response_model=UserRead,
    responses=problems(*AUTHENTICATED, 404, 409, 412),
    summary="Deactivate a user: no more sign-ins, sessions revoked",
)
async def deactivate_user(
    session: SessionDep,
    principal: Writer,
    user_id: uuid.UUID,
    version: ExpectedVersionDep,
) -> Response:
    user = await users.set_user_active(session, principal, user_id, active=False, expected_version=version)
    return record_reply(UserRead.model_validate(user))


@router.post(
    "/{user_id}/activate",
    operation_id="users_activate",
    response_model=UserRead,
    responses=problems(*AUTHENTICATED, 404, 409, 412),
)
async def activate_user(
    session: SessionDep,
    principal: Writer,
    user_id: uuid.UUID,
    version: ExpectedVersionDep,
) -> Response:
    user = await users.set_user_active(session, principal, user_id, active=True, expected_version=version)
    return record_reply(UserRead.model_validate(user))
