"""Secret custom fields: `secret` as a custom field type, `read` as an audit action.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23 17:20:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TYPES = "'text', 'number', 'date', 'boolean', 'select', 'multi_select'"
_ACTIONS = "'create', 'update', 'delete', 'restore', 'erase', 'merge'"


def _replace(table: str, name: str, condition: str) -> None:
    op.drop_constraint(op.f(f"ck_{table}_{name}"), table, type_="check")
    op.create_check_constraint(name, table, condition)


def upgrade() -> None:
    _replace("custom_field_definitions", "custom_field_type", f"type IN ({_TYPES}, 'secret')")
    _replace("audit_log", "audit_action", f"action IN ({_ACTIONS}, 'read')")


def downgrade() -> None:
    _replace("audit_log", "audit_action", f"action IN ({_ACTIONS})")
    _replace("custom_field_definitions", "custom_field_type", f"type IN ({_TYPES})")
