"""/api/v1/audit-log"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import AwareDatetime

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
from app.schemas.audit import AuditEntryPage, AuditEntryRead
from app.services import audit_log

router = APIRouter(prefix=API_PREFIX + "/audit-log", tags=["audit-log"], route_class=ApiRoute)


@router.get(
    "",
    operation_id="audit_log_list",
    response_model=AuditEntryPage,
    responses=problems(*AUTHENTICATED),
)
async def list_audit_log(
    session: SessionDep,
    principal: Annotated[Principal, require(Scope.audit_read)],
    entity_type: Annotated[str | None, Query(max_length=64, description="contact, company, user, team…")] = None,
    entity_id: uuid.UUID | None = None,
    actor_id: uuid.UUID | None = None,
    since: Annotated[AwareDatetime | None, Query(description="Entries at or after this time")] = None,
    until: Annotated[AwareDatetime | None, Query(description="Entries before this time")] = None,
    cursor: CursorDep = None,
    limit: LimitDep = DEFAULT_LIMIT,
) -> AuditEntryPage:
    query = audit_log.AuditQuery(
        entity_type=entity_type,
        entity_id=entity_id,
        actor_id=actor_id,
        since=since,
        until=until,
    )
    page = await audit_log.list_entries(session, principal, query, cursor=cursor, limit=limit)
    return AuditEntryPage(
        items=[AuditEntryRead.model_validate(e) for e in page.items],
        next_cursor=page.next_cursor,
    )
