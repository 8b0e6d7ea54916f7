"""What the privacy rights do with each kind of record that refers to a contact.

One entry per foreign key into `contacts`, named `table.column` as PostgreSQL's catalogue names it
(app/core/references.py): what the personal-data export shows of those rows, which of their free
text an erasure scrubs of the person's values, and why the rest is kept. A test compares this list
with the catalogue, so a table added later that refers to a contact (or to a record listed here,
as a reminder e-mail refers to a task) fails until it is given an entry here. `UNLINKED_TEXT`
holds what refers to no contact but may name one (the rows imports left out).

Every statement is scoped by the person's organisation.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from sqlalchemy import ColumnElement, Select, or_, select, union, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.models.audit import AuditEntry
from app.models.base import utcnow
from app.models.contact import Contact
from app.models.data_import import ImportIssue
from app.models.deal import Deal, DealContact
from app.models.event import Event
from app.models.export import Export as ExportRequest
from app.models.lifecycle import LifecycleChange
from app.models.mail import MailMessage
from app.models.order import Order
from app.models.scoring import ContactActivity, LeadScore
from app.models.task import Task
from app.models.webhook import WebhookDelivery
from app.schemas.contact import ContactRead, LifecycleChangeRead
from app.schemas.mail import MailMessageRead
from app.schemas.scoring import ActivityRead
from app.schemas.task import TaskRead
from app.services import deals, orders, tasks
from app.services.personal_values import PersonalValues

# What the export shows of a reminder e-mail: its recipient is a user, not the person.
_MAIL_FIELDS: Final = frozenset({"id", "task_id", "subject", "body_text", "status", "created_at", "sent_at"})


@dataclass(frozen=True, slots=True)
class Person:
    """The contact a request is about and the duplicates merged into it: one person's records."""

    organization_id: uuid.UUID
    # The contact itself first.
    contact_ids: tuple[uuid.UUID, ...]


Export = Callable[[AsyncSession, Person], Awaitable[dict[str, Any]]]
# Replaces the person's values in the rows' free text; the number of rows changed per table.
Scrub = Callable[[AsyncSession, Person, PersonalValues], Awaitable[Counter[str]]]


@dataclass(frozen=True, slots=True)
class HeldRecords:
    export: Export
    scrub: Scrub | None
    # What an erasure leaves of these rows, and why.
    kept: str
    # Foreign keys into these rows, handled with them: `table.column` → how.
    through: Mapping[str, str] = field(default_factory=dict)


def _length(column: Any) -> int | None:
    """The length of a text column, which a scrubbed value is cut to (None: unbounded)."""
    return getattr(column.type, "length", None)


def _dumped(schema: Any, rows: Sequence[Any]) -> list[dict[str, Any]]:
    return [schema.model_validate(row).model_dump(mode="json") for row in rows]


async def _history(
    session: AsyncSession,
    organization_id: uuid.UUID,
    entity_type: str,
    ids: Sequence[uuid.UUID],
    values: PersonalValues,
) -> Counter[str]:
    """Scrubs the records' audit rows (before/after values) and events (data and changes), which
    `GET /audit-log`, `GET /events` and later webhook deliveries serve."""
    counts: Counter[str] = Counter()
    if not ids:
        return counts
    entries = await session.scalars(
        select(AuditEntry).where(
            AuditEntry.organization_id == organization_id,
            AuditEntry.entity_type == entity_type,
            AuditEntry.entity_id.in_(ids),
        )
    )
    for entry in entries:
        if (changes := values.scrub_json(entry.changes)) != entry.changes:
            entry.changes = changes
            counts["audit_log"] += 1
    stream = await session.scalars(
        select(Event).where(
            Event.organization_id == organization_id, Event.entity_type == entity_type, Event.entity_id.in_(ids)
        )
    )
    for event in stream:
        data, changes = values.scrub_json(event.data), values.scrub_json(event.changes)
        if (data, changes) != (event.data, event.changes):
            event.data, event.changes = data, changes
            counts["events"] += 1
    return counts


async def _merged_contacts(session: AsyncSession, person: Person) -> dict[str, Any]:
    found = await session.scalars(
        select(Contact)
        .where(Contact.organization_id == person.organization_id, Contact.merged_into_id.in_(person.contact_ids))
        .order_by(Contact.id)
    )
    return {"merged_contacts": _dumped(ContactRead, list(found))}


def _current_tasks(person: Person) -> Select[uuid.UUID]:
    return select(Task.id).where(
        Task.organization_id == person.organization_id, Task.contact_id.in_(person.contact_ids)
    )


async def _tasks(session: AsyncSession, person: Person) -> dict[str, Any]:
    found = await session.scalars(
        select(Task)
        .where(Task.organization_id == person.organization_id, Task.contact_id.in_(person.contact_ids))
        .order_by(Task.created_at, Task.id)
    )
    mails = await session.scalars(
        select(MailMessage)
        .where(MailMessage.organization_id == person.organization_id, MailMessage.task_id.in_(_current_tasks(person)))
        .order_by(MailMessage.created_at, MailMessage.id)
    )
    return {
        "tasks": _dumped(TaskRead, list(found)),
        "reminder_mails": [
            MailMessageRead.model_validate(mail).model_dump(mode="json", include=set(_MAIL_FIELDS)) for mail in mails
        ],
    }


async def _task_ids_ever_linked(session: AsyncSession, person: Person) -> list[uuid.UUID]:
    """The tasks about the person now, and those that were before they were moved to another
    record or deleted: their audit rows name every contact a task was linked to."""
    linked = AuditEntry.changes["contact_id"]
    contact_ids = [str(contact_id) for contact_id in person.contact_ids]
    before = select(AuditEntry.entity_id).where(
        AuditEntry.organization_id == person.organization_id,
        AuditEntry.entity_type == tasks.LABEL,
        or_(linked["before"].astext.in_(contact_ids), linked["after"].astext.in_(contact_ids)),
    )
    return list(await session.scalars(union(_current_tasks(person), before)))


async def _scrub_tasks(session: AsyncSession, person: Person, values: PersonalValues) -> Counter[str]:
    """Titles and descriptions, the tasks' history, and their reminder e-mails' subjects and bodies
    (a pending one then goes out scrubbed; a sent one keeps its status and times)."""
    counts: Counter[str] = Counter()
    task_ids = await _task_ids_ever_linked(session, person)
    if not task_ids:
        return counts
    organization_id, now = person.organization_id, utcnow()
    texts = await session.execute(
        select(Task.id, Task.title, Task.description)
        .where(Task.organization_id == organization_id, Task.id.in_(task_ids))
        .with_for_update()
    )
    for task_id, title, description in texts.all():
        scrubbed = (
            values.scrub(title, limit=_length(Task.title)),
            values.scrub_optional(description, limit=_length(Task.description)),
        )
        if scrubbed != (title, description):
            await session.execute(
                update(Task)
                .where(Task.organization_id == organization_id, Task.id == task_id)
                .values(title=scrubbed[0], description=scrubbed[1], version=Task.version + 1, updated_at=now)
                .execution_options(synchronize_session=False)
            )
            counts["tasks"] += 1
    mails = await session.execute(
        select(MailMessage.id, MailMessage.subject, MailMessage.body_text)
        .where(MailMessage.organization_id == organization_id, MailMessage.task_id.in_(task_ids))
        .with_for_update()
    )
    for mail_id, subject, body_text in mails.all():
        scrubbed = (values.scrub(subject, limit=_length(MailMessage.subject)), values.scrub(body_text))
        if scrubbed != (subject, body_text):
            await session.execute(
                update(MailMessage)
                .where(MailMessage.organization_id == organization_id, MailMessage.id == mail_id)
                .values(subject=scrubbed[0], body_text=scrubbed[1])
            )
            counts["mail_messages"] += 1
    return counts + await _history(session, organization_id, tasks.LABEL, task_ids, values)


async def _activities(session: AsyncSession, person: Person) -> dict[str, Any]:
    found = await session.scalars(
        select(ContactActivity)
        .where(
            ContactActivity.organization_id == person.organization_id,
            ContactActivity.contact_id.in_(person.contact_ids),
        )
        .order_by(ContactActivity.occurred_at, ContactActivity.id)
    )
    return {"activities": _dumped(ActivityRead, list(found))}


async def _scrub_activities(session: AsyncSession, person: Person, values: PersonalValues) -> Counter[str]:
    """Channel and outcome are short labels (`wechat`, `interested`), but free text all the same."""
    counts: Counter[str] = Counter()
    labels = await session.execute(
        select(ContactActivity.id, ContactActivity.channel, ContactActivity.outcome)
        .where(
            ContactActivity.organization_id == person.organization_id,
            ContactActivity.contact_id.in_(person.contact_ids),
        )
        .with_for_update()
    )
    for activity_id, channel, outcome in labels.all():
        scrubbed = (
            values.scrub_optional(channel, limit=_length(ContactActivity.channel)),
            values.scrub_optional(outcome, limit=_length(ContactActivity.outcome)),
        )
        if scrubbed != (channel, outcome):
            await session.execute(
                update(ContactActivity)
                .where(ContactActivity.organization_id == person.organization_id, ContactActivity.id == activity_id)
                .values(channel=scrubbed[0], outcome=scrubbed[1])
            )
            counts["contact_activities"] += 1
    return counts


async def _lifecycle_history(session: AsyncSession, person: Person) -> dict[str, Any]:
    found = await session.scalars(
        select(LifecycleChange)
        .where(
            LifecycleChange.organization_id == person.organization_id,
            LifecycleChange.contact_id.in_(person.contact_ids),
        )
        .order_by(LifecycleChange.changed_at, LifecycleChange.id)
    )
    return {"lifecycle_history": _dumped(LifecycleChangeRead, list(found))}


async def _lead_score(session: AsyncSession, person: Person) -> dict[str, Any]:
    found = await session.execute(
        select(LeadScore.score, LeadScore.grade, LeadScore.scored_at).where(
            LeadScore.organization_id == person.organization_id, LeadScore.contact_id == person.contact_ids[0]
        )
    )
    row = found.one_or_none()
    return {
        "lead_score": None
        if row is None
        else {"score": row.score, "grade": row.grade, "scored_at": row.scored_at.isoformat()}
    }


async def _deal_roles(session: AsyncSession, person: Person) -> dict[str, Any]:
    found = await session.execute(
        select(DealContact.deal_id, Deal.name, DealContact.role)
        .join(Deal, (Deal.organization_id == DealContact.organization_id) & (Deal.id == DealContact.deal_id))
        .where(DealContact.organization_id == person.organization_id, DealContact.contact_id.in_(person.contact_ids))
        .order_by(DealContact.deal_id)
    )
    return {"deal_roles": [{"deal_id": str(row.deal_id), "deal_name": row.name, "role": row.role} for row in found]}


async def _scrub_deal_roles(session: AsyncSession, person: Person, values: PersonalValues) -> Counter[str]:
    """A role is a short label (`decision maker`); one that names the person is scrubbed, and so is
    that deal's history (which carries its contacts' roles)."""
    counts: Counter[str] = Counter()
    organization_id = person.organization_id
    roles = await session.execute(
        select(DealContact.deal_id, DealContact.contact_id, DealContact.role)
        .where(
            DealContact.organization_id == organization_id,
            DealContact.contact_id.in_(person.contact_ids),
            DealContact.role.is_not(None),
        )
        .with_for_update()
    )
    changed_deals: set[uuid.UUID] = set()
    for deal_id, contact_id, role in roles.all():
        if (scrubbed := values.scrub_optional(role, limit=_length(DealContact.role))) != role:
            await session.execute(
                update(DealContact)
                .where(
                    DealContact.organization_id == organization_id,
                    DealContact.deal_id == deal_id,
                    DealContact.contact_id == contact_id,
                )
                .values(role=scrubbed)
            )
            changed_deals.add(deal_id)
            counts["deal_contacts"] += 1
    if not changed_deals:
        return counts
    # The roles are part of the deal as the API shows it: its ETag changes.
    await session.execute(
        update(Deal)
        .where(Deal.organization_id == organization_id, Deal.id.in_(changed_deals))
        .values(version=Deal.version + 1, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    return counts + await _history(session, organization_id, deals.DEALS.label, sorted(changed_deals), values)


def _orders_of(person: Person) -> ColumnElement[bool]:
    return (Order.organization_id == person.organization_id) & Order.contact_id.in_(person.contact_ids)


_ORDER_SUMMARY: Final = (Order.id, Order.status, Order.total, Order.currency, Order.notes, Order.created_at)


async def _orders(session: AsyncSession, person: Person) -> dict[str, Any]:
    found = await session.execute(
        select(*_ORDER_SUMMARY).where(_orders_of(person)).order_by(Order.created_at, Order.id)
    )
    return {
        "orders": [
            {
                "id": str(row.id),
                "status": row.status.value,
                "total": str(row.total),
                "currency": row.currency,
                "notes": row.notes,
                "created_at": row.created_at.isoformat(),
            }
            for row in found
        ]
    }


async def _scrub_orders(session: AsyncSession, person: Person, values: PersonalValues) -> Counter[str]:
    """The notes, and the orders' history (which carries them)."""
    counts: Counter[str] = Counter()
    organization_id = person.organization_id
    found = (await session.execute(select(Order.id, Order.notes).where(_orders_of(person)).with_for_update())).all()
    for row in found:
        if row.notes is not None and (notes := values.scrub(row.notes)) != row.notes:
            await session.execute(
                update(Order)
                .where(Order.organization_id == organization_id, Order.id == row.id)
                .values(notes=notes, version=Order.version + 1, updated_at=utcnow())
                .execution_options(synchronize_session=False)
            )
            counts["orders"] += 1
    return counts + await _history(session, organization_id, orders.LABEL, [row.id for row in found], values)


CONTACT_REFERENCES: Final[Mapping[str, HeldRecords]] = {
    "contacts.merged_into_id": HeldRecords(
        _merged_contacts,
        None,
        kept="the duplicates merged into the contact are the same person: erased with it, as it is",
    ),
    "tasks.contact_id": HeldRecords(
        _tasks,
        _scrub_tasks,
        kept="kind, status, times, assignee and links: the work done, counted in reports",
        through={"mail_messages.task_id": "the reminder e-mails: exported with the tasks, subject and body scrubbed"},
    ),
    "contact_activities.contact_id": HeldRecords(
        _activities,
        _scrub_activities,
        kept="signal and time: behaviour the lead scores and reports count",
    ),
    "lifecycle_changes.contact_id": HeldRecords(
        _lifecycle_history,
        None,
        kept="stages, rule names, times and actors: no personal values; the funnel counts them",
    ),
    "lead_scores.contact_id": HeldRecords(_lead_score, None, kept="a number and a grade: no personal values"),
    "deal_contacts.contact_id": HeldRecords(
        _deal_roles,
        _scrub_deal_roles,
        kept="which deals the contact had a part in: the deals and their counts stay whole",
    ),
    "orders.contact_id": HeldRecords(
        _orders,
        _scrub_orders,
        kept="status, lines, amounts and times: revenue and lifecycle rules count them",
        through={"order_line_items.order_id": "product lines (names, quantities, prices): nothing personal"},
    ),
}


async def _scrub_import_issues(session: AsyncSession, person: Person, values: PersonalValues) -> Counter[str]:
    """The rows imports failed or skipped keep their cells for the errors CSV. No key ties such a
    row to a contact, so the organisation's rows are read, and those that name the person are
    scrubbed; a name part alone does not make a row theirs (`伟` is in `李伟`)."""
    counts: Counter[str] = Counter()
    issues = await session.stream(
        select(ImportIssue.id, ImportIssue.reason, ImportIssue.cells)
        .where(ImportIssue.organization_id == person.organization_id)
        .execution_options(yield_per=1000)
    )
    named = [issue async for issue in issues if values.names_the_person([issue.reason, issue.cells])]
    for issue in named:
        await session.execute(
            update(ImportIssue)
            .where(ImportIssue.organization_id == person.organization_id, ImportIssue.id == issue.id)
            .values(reason=values.scrub(issue.reason), cells=values.scrub_json(issue.cells))
        )
        counts["import_issues"] += 1
    return counts


_EXPORT_Q_LENGTH: Final[int] = ExportRequest.__table__.c.q.type.length  # type: ignore[attr-defined]


async def _expire_contact_exports(session: AsyncSession, person: Person, values: PersonalValues) -> Counter[str]:
    """A finished contact export's file may hold the person's row until it expires: it expires now
    (a download answers 410, the sweep deletes the file), and the search terms stored with the
    request are scrubbed. The file is not rewritten: ask for a new export."""
    counts: Counter[str] = Counter()
    contact_exports = (ExportRequest.organization_id == person.organization_id) & (ExportRequest.entity == "contacts")
    still_served = or_(ExportRequest.expires_at.is_(None), ExportRequest.expires_at > utcnow())
    expired = await session.execute(
        update(ExportRequest)
        .where(contact_exports, ExportRequest.status == "done", still_served)
        .values(expires_at=utcnow())
    )
    counts["exports"] += expired.rowcount  # type: ignore[attr-defined]
    stored = select(ExportRequest.id, ExportRequest.q, ExportRequest.filter).where(contact_exports)
    requests = await session.execute(stored)
    for export_id, q, stored_filter in requests:
        if values.names_the_person([q, stored_filter]):
            await session.execute(
                update(ExportRequest)
                .where(ExportRequest.organization_id == person.organization_id, ExportRequest.id == export_id)
                .values(q=values.scrub(q, limit=_EXPORT_Q_LENGTH) if q else q, filter=values.scrub_json(stored_filter))
            )
            counts["export_requests"] += 1
    return counts


async def _forget_delivery_replies(session: AsyncSession, person: Person, values: PersonalValues) -> Counter[str]:
    """A webhook receiver's reply to a delivery of the person's events is kept (`last_response`,
    for debugging); a receiver may echo the event in it. Those replies are dropped."""
    forgotten = await session.execute(
        update(WebhookDelivery)
        .where(
            WebhookDelivery.organization_id == person.organization_id,
            WebhookDelivery.entity_id.in_(person.contact_ids),
            WebhookDelivery.last_response.is_not(None),
        )
        .values(last_response=None)
    )
    count: int = forgotten.rowcount  # type: ignore[attr-defined]
    return Counter({"webhook_deliveries": count}) if count else Counter()


# What refers to no record of the person's but may hold them: scrubbed (or expired) where it does.
UNLINKED_TEXT: Final[Mapping[str, Scrub]] = {
    "import_issues": _scrub_import_issues,
    "exports": _expire_contact_exports,
    "webhook_deliveries": _forget_delivery_replies,
}
