"""/api/v1/events and /api/v1/event-types"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query

from app.core.events import EVENT_TYPES
from app.core.pagination import DEFAULT_LIMIT
from app.core.permissions import Scope
from app.core.principal import Principal
from app.routers.deps import API_PREFIX, AUTHENTICATED, ApiRoute, CursorDep, LimitDep, SessionDep, problems, require
from app.schemas.event import EventPage, EventRead, EventTypeList
from app.services import events

router = APIRouter(prefix=API_PREFIX, tags=["events"], route_class=ApiRoute)
Reader = Annotated[Principal, require(Scope.events_read)]


@router.get(
    "/events",
    operation_id="events_list",
    response_model=EventPage,
    responses=problems(*AUTHENTICATED),
    summary="The organisation's events after `cursor`, in commit order (poll with `next_cursor`)",
)
async def list_events(
    session: SessionDep,
    principal: Reader,
    cursor: CursorDep = None,
    limit: LimitDep = DEFAULT_LIMIT,
    type: Annotated[
        list[str] | None,
        Query(max_length=50, description="Event types to keep: `contact.created`, `contact.*`; repeatable"),
    ] = None,
    entity_type: Annotated[str | None, Query(max_length=64)] = None,
    entity_id: uuid.UUID | None = None,
) -> EventPage:
    batch = await events.list_events(
        session,
        principal,
        cursor=cursor,
        limit=limit,
        types=type or (),
        entity_type=entity_type,
        entity_id=entity_id,
    )
    return EventPage(
        items=[EventRead.model_validate(e) for e in batch.items],
        next_cursor=batch.next_cursor,
        has_more=batch.has_more,
    )


@router.get(
    "/event-types",
    operation_id="event_types_list",
    response_model=EventTypeList,
    responses=problems(*AUTHENTICATED),
    summary="Every event type, for webhook subscriptions and event filters",
)
async def list_event_types(principal: Reader) -> EventTypeList:
    return EventTypeList(items=sorted(EVENT_TYPES))
