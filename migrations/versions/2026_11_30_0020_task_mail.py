"""Task reminder e-mails: the mail outbox.

A reminder's message is written in the transaction that claims the due task (with its `task.due`
event), so it is queued once; a worker job claims messages with a lease and sends them.

Revision ID: 0020
Revises: 0019
Create Date: 2026-11-30 08:10:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0020"
down_revision: str | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_OPEN = sa.text("status IN ('pending', 'sending')")


def upgrade() -> None:
    op.create_table(
        "mail_messages",
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("task_id", sa.Uuid(), nullable=False),
        sa.Column("recipient", sa.String(length=320), nullable=False),
        sa.Column("subject", sa.String(length=500), nullable=False),
        sa.Column("body_text", sa.Text(), nullable=False),
        sa.Column("message_id", sa.String(length=300), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "pending", "sending", "sent", "failed", name="mail_status", native_enum=False, create_constraint=True
            ),
            nullable=False,
        ),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("claim_token", sa.Uuid(), nullable=True),
        sa.Column("last_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.String(length=500), nullable=True),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["organization_id", "task_id"],
            ["tasks.organization_id", "tasks.id"],
            name=op.f("fk_mail_messages_organization_id_task_id_tasks"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_mail_messages_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("organization_id", "id", name=op.f("pk_mail_messages")),
    )
    op.create_index("ix_mail_messages_organization_id_task_id", "mail_messages", ["organization_id", "task_id"])
    op.create_index("ix_mail_messages_due", "mail_messages", ["next_attempt_at"], postgresql_where=_OPEN)


def downgrade() -> None:
    op.drop_index("ix_mail_messages_due", table_name="mail_messages", postgresql_where=_OPEN)
    op.drop_index("ix_mail_messages_organization_id_task_id", table_name="mail_messages")
    op.drop_table("mail_messages")
