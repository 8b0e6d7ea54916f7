"""/api/v1/leads, and each contact's score, activities and lifecycle history."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, Query

from app.core.pagination import DEFAULT_LIMIT
from app.core.permissions import Scope
from app.core.principal import Principal
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
from app.schemas.contact import ContactPage, ContactRead, LifecycleChangePage, LifecycleChangeRead
from app.schemas.scoring import ActivityCreate, ActivityPage, ActivityRead, ScoreExplanation
from app.services import lifecycle, scoring

router = APIRouter(prefix=API_PREFIX, tags=["lead scoring"], route_class=ApiRoute)
Reader = Annotated[Principal, require(Scope.contacts_read)]
Writer = Annotated[Principal, require(Scope.contacts_write)]


@router.get(
    "/leads",
    operation_id="leads_list",
    response_model=ContactPage,
    responses=problems(*AUTHENTICATED),
    summary="The lead queue: leads (qualified ones too), best grade and highest score first",
)
async def lead_queue(
    session: SessionDep,
    principal: Reader,
    owner_id: uuid.UUID | None = None,
    unassigned: Annotated[bool, Query(description="Only leads without an owner")] = False,
    grade: Literal["A", "B", "C", "D"] | None = None,
    cursor: CursorDep = None,
    limit: LimitDep = DEFAULT_LIMIT,
) -> ContactPage:
    page = await scoring.lead_queue(
        session, principal, owner_id=owner_id, unassigned=unassigned, grade=grade, cursor=cursor, limit=limit
    )
    return ContactPage(items=[ContactRead.model_validate(c) for c in page.items], next_cursor=page.next_cursor)


@router.get(
    "/contacts/{contact_id}/lifecycle-history",
    operation_id="contacts_lifecycle_history",
    response_model=LifecycleChangePage,
    responses=problems(*AUTHENTICATED, 404),
    summary="The contact's lifecycle stage changes, newest first, by hand or by which rule",
)
async def lifecycle_history(
    session: SessionDep,
    principal: Reader,
    contact_id: uuid.UUID,
    cursor: CursorDep = None,
    limit: LimitDep = DEFAULT_LIMIT,
) -> LifecycleChangePage:
    page = await lifecycle.history(session, principal, contact_id, cursor=cursor, limit=limit)
    return LifecycleChangePage(
        items=[LifecycleChangeRead.model_validate(change) for change in page.items], next_cursor=page.next_cursor
    )


@router.get(
    "/contacts/{contact_id}/score",
    operation_id="contacts_score",
    response_model=ScoreExplanation,
    responses=problems(*AUTHENTICATED, 404),
    summary="The contact's lead score, rule by rule",
)
async def explain_score(session: SessionDep, principal: Reader, contact_id: uuid.UUID) -> ScoreExplanation:
    return ScoreExplanation.model_validate(await scoring.explain(session, principal, contact_id))


@router.post(
    "/contacts/{contact_id}/activities",
    operation_id="contacts_activities_create",
    status_code=201,
    response_model=ActivityRead,
    responses=problems(*AUTHENTICATED, 404),
    summary="Record what a contact did (opened or clicked an e-mail, submitted a form…); rescores it at once",
)
async def record_activity(
    session: SessionDep, principal: Writer, contact_id: uuid.UUID, body: ActivityCreate
) -> ActivityRead:
    return ActivityRead.model_validate(await scoring.record_activity(session, principal, contact_id, data=body))


@router.get(
    "/contacts/{contact_id}/activities",
    operation_id="contacts_activities_list",
    response_model=ActivityPage,
    responses=problems(*AUTHENTICATED, 404),
)
async def list_activities(
    session: SessionDep,
    principal: Reader,
    contact_id: uuid.UUID,
    cursor: CursorDep = None,
    limit: LimitDep = DEFAULT_LIMIT,
) -> ActivityPage:
    page = await scoring.list_activities(session, principal, contact_id, cursor=cursor, limit=limit)
    return ActivityPage(items=[ActivityRead.model_validate(a) for a in page.items], next_cursor=page.next_cursor)
