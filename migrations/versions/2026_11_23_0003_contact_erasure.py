"""Contact erasure: `contacts.erased_at`, and `erase` as an audit action.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 17:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("contacts", sa.Column("erased_at", sa.DateTime(timezone=True), nullable=True))
    op.drop_constraint(op.f("ck_audit_log_audit_action"), "audit_log", type_="check")
    op.create_check_constraint(
        "audit_action", "audit_log", "action IN ('create', 'update', 'delete', 'restore', 'erase')"
    )


def downgrade() -> None:
    op.drop_constraint(op.f("ck_audit_log_audit_action"), "audit_log", type_="check")
    op.create_check_constraint("audit_action", "audit_log", "action IN ('create', 'update', 'delete', 'restore')")
    op.drop_column("contacts", "erased_at")
