"""Tasks and reminders: a call, e-mail, meeting or to-do for someone, due at a time, about a record."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKeyConstraint, Index, String, text
from sqlalchemy.orm import Mapped, mapped_column

from app.core.enums import TaskKind, TaskStatus
from app.models.base import Base, TenantMixin, TimestampMixin, VersionedMixin, str_enum


class Task(TenantMixin, TimestampMixin, VersionedMixin, Base):
    __tablename__ = "tasks"
    __table_args__ = (
        ForeignKeyConstraint(["organization_id", "owner_id"], ["users.organization_id", "users.id"]),
        ForeignKeyConstraint(["organization_id", "contact_id"], ["contacts.organization_id", "contacts.id"]),
        ForeignKeyConstraint(["organization_id", "company_id"], ["companies.organization_id", "companies.id"]),
        ForeignKeyConstraint(["organization_id", "deal_id"], ["deals.organization_id", "deals.id"]),
        # Every list is in due order: the whole organisation's, one assignee's (also what a
        # restricted caller's visibility clause reads), and one related record's.
        Index("ix_tasks_organization_id_due_at_id", "organization_id", "due_at", "id"),
        Index("ix_tasks_organization_id_owner_id_due_at_id", "organization_id", "owner_id", "due_at", "id"),
        Index("ix_tasks_organization_id_contact_id_due_at_id", "organization_id", "contact_id", "due_at", "id"),
        Index("ix_tasks_organization_id_company_id_due_at_id", "organization_id", "company_id", "due_at", "id"),
        Index("ix_tasks_organization_id_deal_id_due_at_id", "organization_id", "deal_id", "due_at", "id"),
        # The reminder sweep reads across organisations, only what is still waiting to be announced.
        Index("ix_tasks_due_sweep", "due_at", postgresql_where=text("due_notified_at IS NULL AND status = 'open'")),
    )

    kind: Mapped[TaskKind] = mapped_column(str_enum(TaskKind, "task_kind"), default=TaskKind.todo)
    title: Mapped[str] = mapped_column(String(300))
    description: Mapped[str | None] = mapped_column(String(2000), default=None)
    due_at: Mapped[datetime | None] = mapped_column(default=None)
    # The API's `assignee_id`. The column keeps the name the tenant repository's visibility rule
    # reads (`owner_id`), so restricted roles see the tasks assigned to them or their team.
    assignee_id: Mapped[uuid.UUID | None] = mapped_column("owner_id", default=None)
    contact_id: Mapped[uuid.UUID | None] = mapped_column(default=None)
    company_id: Mapped[uuid.UUID | None] = mapped_column(default=None)
    deal_id: Mapped[uuid.UUID | None] = mapped_column(default=None)
    status: Mapped[TaskStatus] = mapped_column(str_enum(TaskStatus, "task_status"), default=TaskStatus.open)
    completed_at: Mapped[datetime | None] = mapped_column(default=None)
    # When `task.due` was emitted; NULL while the reminder is still to come. Set by the sweep's
    # conditional UPDATE (the claim that makes the reminder exactly-once), cleared when due_at
    # moves into the future again.
    due_notified_at: Mapped[datetime | None] = mapped_column(default=None)
