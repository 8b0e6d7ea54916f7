"""The organisation's event stream, read by position: the pull side of the outbox."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import ColumnElement, delete, or_, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.errors import FieldError, ValidationFailed
from app.core.events import unknown_patterns
from app.core.pagination import Keyset, SortKey, ValueKind
from app.core.principal import Principal
from app.core.repository import TenantRepository
from app.models.base import utcnow
from app.models.event import Event


@dataclass(frozen=True, slots=True)
class EventBatch:
    items: Sequence[Event]
    next_cursor: str | None
    has_more: bool


_KEYSET = Keyset.of(
    [SortKey("position", Event.__table__.c.position, ValueKind.integer, nullable=False)], Event.__table__.c.id
)


def _type_condition(patterns: Sequence[str]) -> ColumnElement[bool]:
    conditions: list[ColumnElement[bool]] = []
    for pattern in patterns:
        if pattern == "*":
            return Event.type.is_not(None)
        if pattern.endswith(".*"):
            conditions.append(Event.type.startswith(pattern[:-1], autoescape=True))
        else:
            conditions.append(Event.type == pattern)
    return or_(*conditions)


async def list_events(
    session: AsyncSession,
    principal: Principal,
    *,
    cursor: str | None,
    limit: int,
    types: Sequence[str] = (),
    entity_type: str | None = None,
    entity_id: uuid.UUID | None = None,
) -> EventBatch:
    """Events after `cursor` in commit order. The cursor stays where it was when nothing new has
    committed, so a poller keeps one cursor and sees each event once."""
    if unknown := unknown_patterns(types):
        raise ValidationFailed(FieldError(("query", "type"), f"no such event type: {', '.join(unknown)}"))
    repository = TenantRepository(Event, session, principal, label="event")
    statement = repository.scoped()
    if types:
        statement = statement.where(_type_condition(types))
    if entity_type is not None:
        statement = statement.where(Event.entity_type == entity_type)
    if entity_id is not None:
        statement = statement.where(Event.entity_id == entity_id)
    page = await repository.page(statement, _KEYSET, cursor=cursor, limit=limit)
    if not page.items:
        return EventBatch(items=[], next_cursor=cursor, has_more=False)
    last = page.items[-1]
    return EventBatch(
        items=page.items,
        next_cursor=_KEYSET.encode([last.position], last.id),
        has_more=page.next_cursor is not None,
    )


_PURGE_BATCH = 10_000


async def purge_expired(sessions: async_sessionmaker[AsyncSession], retention_days: int) -> int:
    """Deletes events (and their deliveries) older than the retention, in batches so no
    transaction holds many locks; across organisations, as a maintenance job."""
    cutoff = utcnow() - timedelta(days=retention_days)
    purged = 0
    while True:
        async with sessions() as session, session.begin():
            batch = (
                select(Event.organization_id, Event.id).where(Event.occurred_at < cutoff).limit(_PURGE_BATCH)
            ).subquery()
            result = await session.execute(
                delete(Event).where(
                    tuple_(Event.organization_id, Event.id).in_(select(batch.c.organization_id, batch.c.id))
                )
            )
        deleted = result.rowcount or 0  # type: ignore[attr-defined]
        purged += deleted
        if deleted < _PURGE_BATCH:
            return purged
