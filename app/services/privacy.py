"""A person's rights over their data: everything held about them, and erasure (GDPR art. 15, 17).

Erasure is irreversible. The contact keeps its id, its non-personal fields (lifecycle stage,
source, owner, company, country, timestamps) for aggregates, and is archived; its personal
fields are cleared, and so are their values wherever else Rapport kept them: the audit trail's
before/after values, the events' data and changes (which `GET /events` serves and webhook
deliveries carry), and stored idempotent replies. The erasure itself is audited and is an event.
"""

from __future__ import annotations

import uuid
from typing import Any, Final

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core import audit
from app.core.enums import AuditAction
from app.core.errors import Conflict
from app.core.principal import Principal
from app.models.audit import AuditEntry
from app.models.base import utcnow
from app.models.contact import Contact
from app.models.event import Event
from app.models.idempotency import IdempotencyRecord
from app.schemas.contact import ContactRead
from app.services import records
from app.services.contacts import CONTACTS

ERASED: Final = "(erased)"
# Fields that identify or describe the person; everything else about the contact is kept.
PERSONAL_FIELDS: Final = frozenset(
    {
        "first_name",
        "last_name",
        "full_name",
        "title",
        "email",
        "phone",
        "additional_emails",
        "additional_phones",
        "address_line1",
        "address_line2",
        "city",
        "region",
        "postal_code",
        "external_id",
        "tags",
        "custom_fields",
        "email_opt_in_source",
    }
)
_CLEARED: Final[dict[str, Any]] = {
    "first_name": None,
    "last_name": None,
    "title": None,
    "email": None,
    "phone": None,
    "additional_emails": [],
    "additional_phones": [],
    "address_line1": None,
    "address_line2": None,
    "city": None,
    "region": None,
    "postal_code": None,
    "external_id": None,
    "tags": [],
    "custom_fields": {},
    "email_opt_in": False,
    "email_opt_in_source": None,
    "search_text": "",
}


def _scrub_changes(changes: dict[str, Any] | None) -> dict[str, Any] | None:
    if changes is None:
        return None
    return {
        field: {"before": ERASED, "after": ERASED} if field in PERSONAL_FIELDS else values
        for field, values in changes.items()
    }


def _scrub_data(data: dict[str, Any]) -> dict[str, Any]:
    return {field: (None if field in PERSONAL_FIELDS else value) for field, value in data.items()}


async def _trail(session: AsyncSession, organization_id: uuid.UUID, contact_id: uuid.UUID) -> list[AuditEntry]:
    rows = await session.execute(
        select(AuditEntry)
        .where(
            AuditEntry.organization_id == organization_id,
            AuditEntry.entity_type == "contact",
            AuditEntry.entity_id == contact_id,
        )
        .order_by(AuditEntry.id)
    )
    return list(rows.scalars())


async def _stream(session: AsyncSession, organization_id: uuid.UUID, contact_id: uuid.UUID) -> list[Event]:
    rows = await session.execute(
        select(Event)
        .where(Event.organization_id == organization_id, Event.entity_type == "contact", Event.entity_id == contact_id)
        .order_by(Event.position)
    )
    return list(rows.scalars())


async def personal_data(session: AsyncSession, principal: Principal, contact_id: uuid.UUID) -> dict[str, Any]:
    """Everything held about the person: the record, its audit trail and its events."""
    contact = await CONTACTS.repository(session, principal).get(contact_id)
    trail = await _trail(session, principal.organization_id, contact_id)
    stream = await _stream(session, principal.organization_id, contact_id)
    return {
        "contact": ContactRead.model_validate(contact).model_dump(mode="json"),
        "audit": [
            {
                "occurred_at": entry.occurred_at.isoformat(),
                "action": entry.action,
                "actor_type": entry.actor_type,
                "actor_id": str(entry.actor_id) if entry.actor_id else None,
                "changes": entry.changes,
            }
            for entry in trail
        ],
        "events": [
            {
                "id": str(e.id),
                "type": e.type,
                "timestamp": e.occurred_at.isoformat(),
                "data": e.data,
                "changes": e.changes,
            }
            for e in stream
        ],
    }


async def erase_contact(
    session: AsyncSession, principal: Principal, contact_id: uuid.UUID, *, expected_version: int | None
) -> Contact:
    contact = await CONTACTS.repository(session, principal).locked(contact_id, expected_version=expected_version)
    if contact.erased_at is not None:
        raise Conflict("The contact's data was already erased")
    before = audit.snapshot(contact)
    for field, value in _CLEARED.items():
        setattr(contact, field, value)
    now = utcnow()
    contact.erased_at = now
    contact.archived_at = contact.archived_at or now
    await session.flush()
    await CONTACTS.written(session, principal, [contact])
    organization_id = principal.organization_id

    for entry in await _trail(session, organization_id, contact_id):
        entry.changes = _scrub_changes(entry.changes) or {}
    for event in await _stream(session, organization_id, contact_id):
        event.data = _scrub_data(event.data)
        event.changes = _scrub_changes(event.changes)
    # Stored first replies (24 h) of requests that returned the person's data.
    await session.execute(
        delete(IdempotencyRecord).where(IdempotencyRecord.response_body.contains(str(contact_id).encode()))
    )
    erased_fields = sorted(
        field for field in before if field in PERSONAL_FIELDS and before[field] not in (None, [], {})
    )
    erasure = {field: {"before": ERASED, "after": None} for field in erased_fields}
    records.announce(session, principal, CONTACTS, contact, action=AuditAction.erase, event="erased", changes=erasure)
    return contact
