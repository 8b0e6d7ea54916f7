"""Tasks and reminders: what someone has to do, by when, about which contact, company or deal.

A task is the assignee's: its `owner_id` column is what the tenant repository's visibility rule
reads, so a sales or support user restricted to their own (or their team's) records sees the
tasks assigned to them (or their team-mates). Deleting a task removes it for good (a task that
will not be done is `cancelled` instead); its audit rows stay.

The reminder (`task.due`) is emitted once per due time. The sweep claims due tasks with one
conditional UPDATE that sets `due_notified_at`, in the transaction that writes the events, so
two workers running it at once (arq #196) never announce a task twice: the second finds the
rows locked or already claimed. When mail is configured, the same transaction queues a reminder
e-mail to each claimed task's active assignee (app/services/mail.py sends it), so the e-mail is
queued exactly once too.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from sqlalchemy import ColumnElement, func, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core import audit, events
from app.core.enums import AuditAction, TaskKind, TaskStatus
from app.core.errors import FieldError, ValidationFailed
from app.core.ids import new_id
from app.core.pagination import Keyset, Page, SortKey, ValueKind
from app.core.principal import Principal
from app.core.repository import TenantRepository
from app.core.settings import Settings
from app.models.base import utcnow
from app.models.company import Company
from app.models.contact import Contact
from app.models.deal import Deal
from app.models.organization import User
from app.models.task import Task
from app.schemas.contact import full_name
from app.schemas.task import TaskCreate, TaskRead, TaskUpdate
from app.services import mail, records

LABEL: Final = "task"
# Tasks announced per transaction by the sweep: a burst of due tasks commits in bounded steps.
DUE_BATCH: Final = 500

_RELATED: Final[tuple[records.Related, ...]] = (
    ("contact_id", Contact, "contact"),
    ("company_id", Company, "company"),
    ("deal_id", Deal, "deal"),
)
_KEYSET: Final = Keyset.of([SortKey("due_at", Task.__table__.c.due_at, ValueKind.datetime)], Task.id)


@dataclass(frozen=True, slots=True)
class TaskFilter:
    """Equality filters, and a due window: `due_after` ≤ due_at < `due_before`."""

    assignee_id: uuid.UUID | None = None
    status: TaskStatus | None = None
    kind: TaskKind | None = None
    contact_id: uuid.UUID | None = None
    company_id: uuid.UUID | None = None
    deal_id: uuid.UUID | None = None
    due_after: datetime | None = None
    due_before: datetime | None = None


def _tasks(session: AsyncSession, principal: Principal) -> TenantRepository[Task]:
    return TenantRepository(Task, session, principal, label=LABEL)


def _snapshot(task: Task) -> audit.Snapshot:
    # The sweep's claim is bookkeeping, not a change anyone made.
    return audit.snapshot(task, exclude={"due_notified_at"})


def _emit(
    session: AsyncSession, actor: events.Actor, task: Task, name: str, *, changes: audit.Changes | None = None
) -> None:
    records.emit_read_model_event(session, actor, LABEL, TaskRead, task, name, changes=changes)


def _at_assignee(exc: ValidationFailed) -> ValidationFailed:
    """The users service reports an unassignable user at `owner_id`; this API calls it `assignee_id`."""
    return ValidationFailed([FieldError(("body", "assignee_id"), error.msg) for error in exc.errors])


async def create_task(session: AsyncSession, principal: Principal, *, data: TaskCreate) -> Task:
    await records.related_records(session, principal, data.model_dump(), _RELATED)
    try:
        assignee_id = await records.initial_owner(
            session, principal, sent="assignee_id" in data.model_fields_set, owner_id=data.assignee_id
        )
    except ValidationFailed as exc:
        raise _at_assignee(exc) from exc
    return await _insert(session, principal, data.model_dump(exclude={"assignee_id"}) | {"assignee_id": assignee_id})


async def add_follow_up(
    session: AsyncSession,
    principal: Principal,
    *,
    assignee_id: uuid.UUID,
    contact_id: uuid.UUID,
    title: str,
    due_at: datetime,
) -> Task:
    """A call the system sets up for a contact's new owner (an assignment's follow-up). Nothing is
    checked against the caller: the rule chose the assignee, and the contact was just written
    (a sales rep's lead routed to a colleague may already be out of the rep's sight)."""
    values = {"kind": TaskKind.call, "title": title, "due_at": due_at, "assignee_id": assignee_id}
    return await _insert(session, principal, values | {"contact_id": contact_id})


async def _insert(session: AsyncSession, principal: Principal, values: dict[str, Any]) -> Task:
    """A new task, complete without a flush (its row goes out with the transaction's next one)."""
    now = utcnow()
    task = Task(
        organization_id=principal.organization_id,
        id=new_id(),
        status=TaskStatus.open,
        created_at=now,
        updated_at=now,
        version=1,
        **values,
    )
    session.add(task)
    audit.record(
        session,
        principal,
        action=AuditAction.create,
        entity_type=LABEL,
        entity_id=task.id,
        changes=audit.creation(_snapshot(task)),
    )
    _emit(session, events.Actor.of(principal), task, "created")
    return task


async def get_task(session: AsyncSession, principal: Principal, task_id: uuid.UUID) -> Task:
    return await _tasks(session, principal).get(task_id)


async def find_tasks(
    session: AsyncSession, principal: Principal, *, where: TaskFilter, cursor: str | None, limit: int
) -> Page[Task]:
    """The tasks the caller may see, soonest due first (those without a due time last)."""
    repository = _tasks(session, principal)
    conditions: list[ColumnElement[bool]] = [
        column == value
        for column, value in (
            (Task.assignee_id, where.assignee_id),
            (Task.status, where.status),
            (Task.kind, where.kind),
            (Task.contact_id, where.contact_id),
            (Task.company_id, where.company_id),
            (Task.deal_id, where.deal_id),
        )
        if value is not None
    ]
    if where.due_after is not None:
        conditions.append(Task.due_at >= where.due_after)
    if where.due_before is not None:
        conditions.append(Task.due_at < where.due_before)
    return await repository.page(repository.scoped().where(*conditions), _KEYSET, cursor=cursor, limit=limit)


async def _editable(
    session: AsyncSession, principal: Principal, task_id: uuid.UUID, *, expected_version: int | None
) -> Task:
    task = await _tasks(session, principal).locked(task_id, expected_version=expected_version)
    return task


async def update_task(
    session: AsyncSession, principal: Principal, task_id: uuid.UUID, *, data: TaskUpdate, expected_version: int | None
) -> Task:
    task = await _editable(session, principal, task_id, expected_version=expected_version)
    return await _apply(session, principal, task, data.changes())


async def complete_task(
    session: AsyncSession, principal: Principal, task_id: uuid.UUID, *, expected_version: int | None
) -> Task:
    task = await _editable(session, principal, task_id, expected_version=expected_version)
    return await _apply(session, principal, task, {"status": TaskStatus.completed})


async def reopen_task(
    session: AsyncSession, principal: Principal, task_id: uuid.UUID, *, expected_version: int | None
) -> Task:
    task = await _editable(session, principal, task_id, expected_version=expected_version)
    return await _apply(session, principal, task, {"status": TaskStatus.open})


async def _apply(session: AsyncSession, principal: Principal, task: Task, changes: dict[str, Any]) -> Task:
    """Checks a change, applies it, and writes its audit row and events (`task.updated`, and
    `task.completed` when it completed the task). A change that changes nothing writes nothing."""
    # One UPDATE at the end: the lookups on the way must not flush half a change.
    with session.no_autoflush:
        before, was = _snapshot(task), task.status
        relinked = {f: changes[f] for f, _, _ in _RELATED if f in changes and changes[f] != getattr(task, f)}
        await records.related_records(session, principal, relinked, _RELATED)
        try:
            await records.check_new_owner(
                session, principal, {"owner_id": changes.get("assignee_id")}, task.assignee_id
            )
        except ValidationFailed as exc:
            raise _at_assignee(exc) from exc
        now = utcnow()
        if (status := changes.pop("status", task.status)) is not task.status:
            task.status = status
            task.completed_at = now if status is TaskStatus.completed else None
        if "due_at" in changes and (due_at := changes.pop("due_at")) != task.due_at:
            task.due_at = due_at
            # A due time moved into the future is a new reminder to come.
            if due_at is not None and due_at > now:
                task.due_notified_at = None
        for name, value in changes.items():
            if getattr(task, name) != value:
                setattr(task, name, value)
    delta = audit.diff(before, _snapshot(task))
    if not delta:
        return task
    await session.flush()
    audit.record(session, principal, action=AuditAction.update, entity_type=LABEL, entity_id=task.id, changes=delta)
    actor = events.Actor.of(principal)
    _emit(session, actor, task, "updated", changes=delta)
    if task.status is TaskStatus.completed and was is not TaskStatus.completed:
        _emit(session, actor, task, "completed", changes=delta)
    return task


async def delete_task(
    session: AsyncSession, principal: Principal, task_id: uuid.UUID, *, expected_version: int | None
) -> None:
    task = await _editable(session, principal, task_id, expected_version=expected_version)
    before = _snapshot(task)
    # The event carries the task as it was; it is built before the row goes.
    _emit(session, events.Actor.of(principal), task, "deleted")
    await session.delete(task)
    await session.flush()
    audit.record(
        session,
        principal,
        action=AuditAction.delete,
        entity_type=LABEL,
        entity_id=task.id,
        changes={key: {"before": value, "after": None} for key, value in before.items() if value is not None},
    )


async def _claim_due(session: AsyncSession, *, limit: int) -> list[Task]:
    """Marks up to `limit` open tasks whose due time has passed as announced, and returns them.
    The row locks decide between concurrent sweeps: rows another sweep holds are skipped, and
    the WHERE is checked again on the locked rows, so a task is claimed once."""
    waiting = (Task.due_notified_at.is_(None)) & (Task.status == TaskStatus.open) & (Task.due_at <= func.now())
    batch = (
        select(Task.organization_id, Task.id)
        .where(waiting)
        .order_by(Task.due_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    claimed = await session.execute(
        update(Task)
        .where(tuple_(Task.organization_id, Task.id).in_(batch), waiting)
        # A reminder is not an edit: updated_at (and the version, the ETag) stay as they were.
        .values(due_notified_at=func.now(), updated_at=Task.updated_at)
        .returning(Task)
        .execution_options(synchronize_session=False)
    )
    return list(claimed.scalars())


async def _queue_reminder_mails(session: AsyncSession, settings: Settings, due: list[Task]) -> None:
    """Queues a reminder e-mail to each task's assignee; a task without one, or whose assignee is
    deactivated, gets none. One query finds the addresses and the names of the related records."""
    assigned = [(task.organization_id, task.id) for task in due if task.assignee_id is not None]
    if not assigned:
        return
    found = await session.execute(
        select(
            Task.organization_id,
            Task.id,
            User.email,
            Contact.first_name,
            Contact.last_name,
            Company.name.label("company_name"),
            Deal.name.label("deal_name"),
        )
        .join(User, (User.organization_id == Task.organization_id) & (User.id == Task.assignee_id))
        .outerjoin(Contact, (Contact.organization_id == Task.organization_id) & (Contact.id == Task.contact_id))
        .outerjoin(Company, (Company.organization_id == Task.organization_id) & (Company.id == Task.company_id))
        .outerjoin(Deal, (Deal.organization_id == Task.organization_id) & (Deal.id == Task.deal_id))
        .where(tuple_(Task.organization_id, Task.id).in_(assigned), User.is_active)
    )
    tasks_by_key = {(task.organization_id, task.id): task for task in due}
    for row in found:
        task = tasks_by_key[(row.organization_id, row.id)]
        about = {
            "Contact": full_name(row.first_name, row.last_name),
            "Company": row.company_name,
            "Deal": row.deal_name,
        }
        mail.queue_message(
            session,
            settings,
            organization_id=task.organization_id,
            task_id=task.id,
            recipient=row.email,
            subject=f"Task due: {task.title}",
            body_text=_reminder_text(task, about),
        )


def _reminder_text(task: Task, about: Mapping[str, str | None]) -> str:
    # Only claimed tasks get here, and a task is claimed once its due time has passed.
    due_at = task.due_at.astimezone(UTC) if task.due_at is not None else utcnow()
    lines = [task.title, "", f"Kind: {task.kind.value}", f"Due: {due_at:%Y-%m-%d %H:%M} UTC"]
    lines += [f"{label}: {name}" for label, name in about.items() if name]
    if task.description:
        lines += ["", task.description]
    lines += ["", f"Task id: {task.id}"]
    return "\n".join(lines) + "\n"


async def announce_due(
    sessions: async_sessionmaker[AsyncSession], settings: Settings, *, batch_size: int = DUE_BATCH
) -> int:
    """Emits `task.due` for every open task whose due time has passed and that was not announced
    yet, and queues its reminder e-mail when mail is configured, each claim committed with its
    events and e-mails; how many were announced."""
    announced = 0
    while True:
        async with sessions() as session, session.begin():
            due = await _claim_due(session, limit=batch_size)
            for task in due:
                _emit(session, events.SYSTEM, task, "due")
            if settings.mail_enabled:
                await _queue_reminder_mails(session, settings, due)
        announced += len(due)
        if len(due) < batch_size:
            return announced
