"""Merges: `merged_into_id` on contacts and companies, and `merge` as an audit action.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 17:05:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    for table in ("contacts", "companies"):
        op.add_column(table, sa.Column("merged_into_id", sa.Uuid(), nullable=True))
        op.create_foreign_key(
            op.f(f"fk_{table}_organization_id_merged_into_id_{table}"),
            table,
            table,
            ["organization_id", "merged_into_id"],
            ["organization_id", "id"],
        )
    op.drop_constraint(op.f("ck_audit_log_audit_action"), "audit_log", type_="check")
    op.create_check_constraint(
        "audit_action", "audit_log", "action IN ('create', 'update', 'delete', 'restore', 'erase', 'merge')"
    )


def downgrade() -> None:
    op.drop_constraint(op.f("ck_audit_log_audit_action"), "audit_log", type_="check")
    op.create_check_constraint(
        "audit_action", "audit_log", "action IN ('create', 'update', 'delete', 'restore', 'erase')"
    )
    for table in ("contacts", "companies"):
        op.drop_constraint(op.f(f"fk_{table}_organization_id_merged_into_id_{table}"), table, type_="foreignkey")
        op.drop_column(table, "merged_into_id")
