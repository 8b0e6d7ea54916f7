"""Reading the audit trail."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from app.core.pagination import Keyset, Page
from app.core.principal import Principal
from app.core.repository import TenantRepository
from app.models.audit import AuditEntry


@dataclass(frozen=True, slots=True)
class AuditQuery:
    entity_type: str | None = None
    entity_id: uuid.UUID | None = None
    actor_id: uuid.UUID | None = None
    since: datetime | None = None
    until: datetime | None = None


async def list_entries(
    session: AsyncSession,
    principal: Principal,
    query: AuditQuery,
    *,
    cursor: str | None,
    limit: int,
) -> Page[AuditEntry]:
    """Newest first. Ids are UUIDv7, so id order is time order and the cursor is the id."""
    repository = TenantRepository(AuditEntry, session, principal, label="audit entry")
    statement = repository.scoped()
    if query.entity_type is not None:
        statement = statement.where(AuditEntry.entity_type == query.entity_type)
    if query.entity_id is not None:
        statement = statement.where(AuditEntry.entity_id == query.entity_id)
    if query.actor_id is not None:
        statement = statement.where(AuditEntry.actor_id == query.actor_id)
    if query.since is not None:
        statement = statement.where(AuditEntry.occurred_at >= query.since)
    if query.until is not None:
        statement = statement.where(AuditEntry.occurred_at < query.until)
    return await repository.page(
        statement,
        Keyset.of([], AuditEntry.id, id_descending=True),
        cursor=cursor,
        limit=limit,
    )
