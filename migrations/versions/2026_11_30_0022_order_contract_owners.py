"""Orders and contracts get owners, so the organisation's record visibility restricts them as it
does deals.

`owner_id` (nullable: unowned, as an API key's records are) references a user of the same
organisation. Existing rows are given the owner a create would have given them: their deal's owner
when they have a deal with one, else the user who created them (the actor of their `create` audit
row, when that was a user and not an API key), else none. The backfill runs before the foreign key
and the index exist, so it neither checks nor maintains them row by row.

Revision ID: 0022
Revises: 0021
Create Date: 2026-11-30 08:40:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0022"
down_revision: str | None = "0021"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# table → the entity_type its audit rows carry
_OWNED = {"orders": "order", "contracts": "contract"}

# Only rows without an owner, and only where an owner is found: safe to run again.
_BACKFILL = """
UPDATE {table} AS record SET owner_id = found.owner_id
FROM (
    SELECT unowned.organization_id, unowned.id, coalesce(deals.owner_id, creators.id) AS owner_id
    FROM {table} AS unowned
    LEFT JOIN deals ON deals.organization_id = unowned.organization_id AND deals.id = unowned.deal_id
    LEFT JOIN LATERAL (
        SELECT audit_log.actor_id FROM audit_log
        WHERE audit_log.organization_id = unowned.organization_id
            AND audit_log.entity_type = '{entity}'
            AND audit_log.entity_id = unowned.id
            AND audit_log.action = 'create'
            AND audit_log.actor_type = 'user'
        ORDER BY audit_log.id
        LIMIT 1
    ) AS created ON true
    LEFT JOIN users AS creators
        ON creators.organization_id = unowned.organization_id AND creators.id = created.actor_id
    WHERE unowned.owner_id IS NULL
) AS found
WHERE record.organization_id = found.organization_id AND record.id = found.id AND found.owner_id IS NOT NULL
"""


def upgrade() -> None:
    for table, entity in _OWNED.items():
        op.add_column(table, sa.Column("owner_id", sa.Uuid(), nullable=True))
        op.execute(_BACKFILL.format(table=table, entity=entity))
        op.create_foreign_key(
            op.f(f"fk_{table}_organization_id_owner_id_users"),
            table,
            "users",
            ["organization_id", "owner_id"],
            ["organization_id", "id"],
        )
        op.create_index(f"ix_{table}_organization_id_owner_id_id", table, ["organization_id", "owner_id", "id"])


def downgrade() -> None:
    for table in _OWNED:
        op.drop_index(f"ix_{table}_organization_id_owner_id_id", table_name=table)
        op.drop_constraint(op.f(f"fk_{table}_organization_id_owner_id_users"), table, type_="foreignkey")
        op.drop_column(table, "owner_id")
