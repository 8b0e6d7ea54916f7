"""Tasks and reminders.

The assignee column is named `owner_id`, as on the other owned records, so the tenant repository's
visibility rule applies to tasks unchanged (the API calls it `assignee_id`).

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-30 05:35:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_DUE_SWEEP = sa.text("due_notified_at IS NULL AND status = 'open'")


def upgrade() -> None:
    op.create_table(
        "tasks",
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column(
            "kind",
            sa.Enum("call", "email", "meeting", "todo", name="task_kind", native_enum=False, create_constraint=True),
            nullable=False,
        ),
        sa.Column("title", sa.String(length=300), nullable=False),
        sa.Column("description", sa.String(length=2000), nullable=True),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("owner_id", sa.Uuid(), nullable=True),
        sa.Column("contact_id", sa.Uuid(), nullable=True),
        sa.Column("company_id", sa.Uuid(), nullable=True),
        sa.Column("deal_id", sa.Uuid(), nullable=True),
        sa.Column(
            "status",
            sa.Enum("open", "completed", "cancelled", name="task_status", native_enum=False, create_constraint=True),
            nullable=False,
        ),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("due_notified_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["organization_id", "company_id"],
            ["companies.organization_id", "companies.id"],
            name=op.f("fk_tasks_organization_id_company_id_companies"),
        ),
        sa.ForeignKeyConstraint(
            ["organization_id", "contact_id"],
            ["contacts.organization_id", "contacts.id"],
            name=op.f("fk_tasks_organization_id_contact_id_contacts"),
        ),
        sa.ForeignKeyConstraint(
            ["organization_id", "deal_id"],
            ["deals.organization_id", "deals.id"],
            name=op.f("fk_tasks_organization_id_deal_id_deals"),
        ),
        sa.ForeignKeyConstraint(
            ["organization_id", "owner_id"],
            ["users.organization_id", "users.id"],
            name=op.f("fk_tasks_organization_id_owner_id_users"),
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_tasks_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("organization_id", "id", name=op.f("pk_tasks")),
    )
    op.create_index("ix_tasks_organization_id_due_at_id", "tasks", ["organization_id", "due_at", "id"])
    op.create_index(
        "ix_tasks_organization_id_owner_id_due_at_id", "tasks", ["organization_id", "owner_id", "due_at", "id"]
    )
    op.create_index(
        "ix_tasks_organization_id_contact_id_due_at_id", "tasks", ["organization_id", "contact_id", "due_at", "id"]
    )
    op.create_index(
        "ix_tasks_organization_id_company_id_due_at_id", "tasks", ["organization_id", "company_id", "due_at", "id"]
    )
    op.create_index(
        "ix_tasks_organization_id_deal_id_due_at_id", "tasks", ["organization_id", "deal_id", "due_at", "id"]
    )
    op.create_index("ix_tasks_due_sweep", "tasks", ["due_at"], postgresql_where=_DUE_SWEEP)


def downgrade() -> None:
    op.drop_index("ix_tasks_due_sweep", table_name="tasks", postgresql_where=_DUE_SWEEP)
    op.drop_index("ix_tasks_organization_id_deal_id_due_at_id", table_name="tasks")
    op.drop_index("ix_tasks_organization_id_company_id_due_at_id", table_name="tasks")
    op.drop_index("ix_tasks_organization_id_contact_id_due_at_id", table_name="tasks")
    op.drop_index("ix_tasks_organization_id_owner_id_due_at_id", table_name="tasks")
    op.drop_index("ix_tasks_organization_id_due_at_id", table_name="tasks")
    op.drop_table("tasks")
