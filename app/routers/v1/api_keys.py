"""/api/v1/api-keys"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Response

from app.core.pagination import DEFAULT_LIMIT
from app.core.permissions import Scope
from app.core.principal import Principal
from app.core.routing import redacted_in_replays
from app.routers.deps import (
    API_PREFIX,
    AUTHENTICATED,
    ApiRoute,
    CursorDep,
    LimitDep,
    SessionDep,
    problems,
    require,
)
from app.schemas.api_key import ApiKeyCreate, ApiKeyCreated, ApiKeyPage, ApiKeyRead
from app.services import api_keys

router = APIRouter(prefix=API_PREFIX + "/api-keys", tags=["api-keys"], route_class=ApiRoute)
Manager = Annotated[Principal, require(Scope.api_keys_manage)]


@router.get(
    "",
    operation_id="api_keys_list",
    response_model=ApiKeyPage,
    responses=problems(*AUTHENTICATED),
)
async def list_api_keys(
    session: SessionDep,
    principal: Manager,
    cursor: CursorDep = None,
    limit: LimitDep = DEFAULT_LIMIT,
) -> ApiKeyPage:
    page = await api_keys.list_api_keys(session, principal, cursor=cursor, limit=limit)
    return ApiKeyPage(
        items=[ApiKeyRead.model_validate(k) for k in page.items],
        next_cursor=page.next_cursor,
    )


@router.post(
    "",
    operation_id="api_keys_create",
    status_code=201,
    response_model=ApiKeyCreated,
    responses=problems(*AUTHENTICATED),
    summary="Create an API key (the secret is in this reply only)",
)
@redacted_in_replays("secret")
async def create_api_key(
    session: SessionDep, principal: Manager, body: ApiKeyCreate, response: Response
) -> ApiKeyCreated:
    created = await api_keys.create_api_key(session, principal, data=body)
    response.headers["Location"] = f"/api/v1/api-keys/{created.api_key.id}"
    return ApiKeyCreated.model_validate(
        {
            **ApiKeyRead.model_validate(created.api_key).model_dump(),
            "secret": created.secret,
        }
    )


@router.get(
    "/{key_id}",
    operation_id="api_keys_get",
    response_model=ApiKeyRead,
    responses=problems(*AUTHENTICATED, 404),
)
async def get_api_key(session: SessionDep, principal: Manager, key_id: uuid.UUID) -> ApiKeyRead:
    return ApiKeyRead.model_validate(await api_keys.get_api_key(session, principal, key_id))


@router.delete(
    "/{key_id}",
    operation_id="api_keys_revoke",
    response_model=ApiKeyRead,
    responses=problems(*AUTHENTICATED, 404, 409),
    summary="Revoke an API key",
)
async def revoke_api_key(session: SessionDep, principal: Manager, key_id: uuid.UUID) -> ApiKeyRead:
    return ApiKeyRead.model_validate(await api_keys.revoke_api_key(session, principal, key_id))
