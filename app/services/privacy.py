"""A person's rights over their data: everything held about them, and erasure (GDPR art. 15, 17).

The person is the contact and the duplicates merged into it. The export holds their records,
their audit trail and events, and every record that refers to them (privacy_references lists
each kind, and a test checks that list against the database's foreign keys).

Erasure is irreversible. The contact keeps its id, its non-personal fields (lifecycle stage,
source, owner, company, country, timestamps) for aggregates, and is archived; its personal
fields are cleared, and so are their values wherever else Rapport kept them: the audit trail's
before/after values, the events' data and changes (which `GET /events` serves and webhook
deliveries carry), stored idempotent replies, and the free text of the records that refer to
the person (task titles, reminder e-mails, order notes…) and of the rows imports left out that
name the person, where each name, e-mail and phone the person had becomes `(erased)`. The erasure
itself is audited and is an event, which counts the rows scrubbed per table but names no value.
"""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import datetime
from typing import Any, Final

from sqlalchemy import Select, delete, select
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
from app.services import custom_fields, records
from app.services.contacts import CONTACTS
from app.services.personal_values import ERASED, PersonalValues, past_identities
from app.services.privacy_references import CONTACT_REFERENCES, UNLINKED_TEXT, Person

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


async def _trail(session: AsyncSession, person: Person) -> list[AuditEntry]:
    rows = await session.execute(
        select(AuditEntry)
        .where(
            AuditEntry.organization_id == person.organization_id,
            AuditEntry.entity_type == CONTACTS.label,
            AuditEntry.entity_id.in_(person.contact_ids),
        )
        .order_by(AuditEntry.id)
    )
    return list(rows.scalars())


async def _stream(session: AsyncSession, person: Person) -> list[Event]:
    rows = await session.execute(
        select(Event)
        .where(
            Event.organization_id == person.organization_id,
            Event.entity_type == CONTACTS.label,
            Event.entity_id.in_(person.contact_ids),
        )
        .order_by(Event.position)
    )
    return list(rows.scalars())


def _duplicates(session: AsyncSession, principal: Principal, contact: Contact) -> Select[Contact]:
    """The duplicates merged into the contact: a merge repoints earlier merges into the ones it
    merges, so one level holds them all."""
    return (
        CONTACTS.repository(session, principal)
        .scoped()
        .where(Contact.merged_into_id == contact.id)
        .order_by(Contact.id)
    )


async def personal_data(session: AsyncSession, principal: Principal, contact_id: uuid.UUID) -> dict[str, Any]:
    """Everything held about the person: the record, its audit trail and events, and every record
    that refers to it, one section each (see privacy_references)."""
    contact = await CONTACTS.repository(session, principal).get(contact_id)
    merged = await session.scalars(_duplicates(session, principal, contact))
    person = Person(principal.organization_id, (contact.id, *(duplicate.id for duplicate in merged)))
    shown = ContactRead.model_validate(contact)
    # A subject access request holds the person's secret fields too, for those who may read them.
    shown.custom_fields |= custom_fields.reveal_secrets(
        session, principal, entity_type=CONTACTS.label, record_id=contact.id, values=contact.custom_fields
    )
    held: dict[str, Any] = {
        "contact": shown.model_dump(mode="json"),
        "audit": [
            {
                "entity_id": str(entry.entity_id),
                "occurred_at": entry.occurred_at.isoformat(),
                "action": entry.action,
                "actor_type": entry.actor_type,
                "actor_id": str(entry.actor_id) if entry.actor_id else None,
                "changes": entry.changes,
            }
            for entry in await _trail(session, person)
        ],
        "events": [
            {
                "id": str(e.id),
                "entity_id": str(e.entity_id),
                "type": e.type,
                "timestamp": e.occurred_at.isoformat(),
                "data": e.data,
                "changes": e.changes,
            }
            for e in await _stream(session, person)
        ],
    }
    for held_records in CONTACT_REFERENCES.values():
        held |= await held_records.export(session, person)
    return held


def _clear(contact: Contact, now: datetime) -> dict[str, dict[str, Any]]:
    """Clears the personal fields; the erasure's changes (which fields held a value, not the values)."""
    before = audit.snapshot(contact)
    for field, value in _CLEARED.items():
        setattr(contact, field, value)
    contact.erased_at = now
    contact.archived_at = contact.archived_at or now
    erased_fields = sorted(
        field for field in before if field in PERSONAL_FIELDS and before[field] not in (None, [], {})
    )
    return {field: {"before": ERASED, "after": None} for field in erased_fields}


async def erase_contact(
    session: AsyncSession, principal: Principal, contact_id: uuid.UUID, *, expected_version: int | None
) -> Contact:
    contact = await CONTACTS.repository(session, principal).locked(contact_id, expected_version=expected_version)
    if contact.erased_at is not None:
        raise Conflict("The contact's data was already erased")
    if contact.merged_into_id is not None:
        raise Conflict(
            f"The contact was merged into {contact.merged_into_id}: erase that contact, which erases this one with it"
        )
    # The same person: cleared with the contact.
    merged = list(await session.scalars(_duplicates(session, principal, contact).with_for_update()))
    erased = [contact, *merged]
    person = Person(principal.organization_id, tuple(c.id for c in erased))
    trail = await _trail(session, person)
    # Read before the fields are cleared: the values to find in the text about the person, the
    # ones the contacts hold and the ones they held before.
    values = PersonalValues([*erased, *past_identities((entry.entity_id, entry.changes) for entry in trail)])
    now = utcnow()
    erasures = {c.id: _clear(c, now) for c in erased}
    await session.flush()
    await CONTACTS.written(session, principal, erased)

    for entry in trail:
        entry.changes = _scrub_changes(entry.changes) or {}
    for event in await _stream(session, person):
        event.data = _scrub_data(event.data)
        event.changes = _scrub_changes(event.changes)
    scrubbed: Counter[str] = Counter()
    for held_records in CONTACT_REFERENCES.values():
        if held_records.scrub is not None:
            scrubbed += await held_records.scrub(session, person, values)
    for scrub_unlinked in UNLINKED_TEXT.values():
        scrubbed += await scrub_unlinked(session, person, values)
    # Stored first replies (24 h) of requests that returned the person's data.
    for erased_id in person.contact_ids:
        await session.execute(
            delete(IdempotencyRecord).where(
                IdempotencyRecord.organization_id == person.organization_id,
                IdempotencyRecord.response_body.contains(str(erased_id).encode()),
            )
        )

    for duplicate in merged:
        records.announce(
            session,
            principal,
            CONTACTS,
            duplicate,
            action=AuditAction.erase,
            event="erased",
            changes=erasures[duplicate.id],
        )
    # Counts of rows scrubbed per table, so the erasure can be accounted for without a value.
    erasure = erasures[contact.id] | {
        "scrubbed_records": {"before": None, "after": dict(sorted(scrubbed.items()))},
    }
    if merged:
        erasure["merged_ids"] = {"before": None, "after": [str(duplicate.id) for duplicate in merged]}
    records.announce(session, principal, CONTACTS, contact, action=AuditAction.erase, event="erased", changes=erasure)
    return contact
