"""Assignment rules, and users' out-of-office days (assignment skips them).

Revision ID: 0016
Revises: 0015
Create Date: 2026-11-30 06:40:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("users", sa.Column("out_of_office_from", sa.Date(), nullable=True))
    op.add_column("users", sa.Column("out_of_office_until", sa.Date(), nullable=True))
    op.create_table(
        "assignment_rules",
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("condition", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column(
            "strategy",
            sa.Enum(
                "fixed_user",
                "round_robin",
                "least_loaded",
                "territory",
                name="assignment_strategy",
                native_enum=False,
                create_constraint=True,
            ),
            nullable=False,
        ),
        sa.Column("user_id", sa.Uuid(), nullable=True),
        sa.Column("team_id", sa.Uuid(), nullable=True),
        sa.Column("load_measure", sa.String(length=8), nullable=False),
        sa.Column("territory_field", sa.String(length=100), nullable=True),
        sa.Column("territory_map", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("follow_up_hours", sa.Integer(), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("turn", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.CheckConstraint(
            "follow_up_hours IS NULL OR follow_up_hours BETWEEN 0 AND 8760",
            name=op.f("ck_assignment_rules_follow_up_hours"),
        ),
        sa.CheckConstraint("load_measure IN ('leads', 'deals')", name=op.f("ck_assignment_rules_load_measure")),
        sa.ForeignKeyConstraint(
            ["organization_id", "team_id"],
            ["teams.organization_id", "teams.id"],
            name=op.f("fk_assignment_rules_organization_id_team_id_teams"),
        ),
        sa.ForeignKeyConstraint(
            ["organization_id", "user_id"],
            ["users.organization_id", "users.id"],
            name=op.f("fk_assignment_rules_organization_id_user_id_users"),
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_assignment_rules_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("organization_id", "id", name=op.f("pk_assignment_rules")),
    )


def downgrade() -> None:
    op.drop_table("assignment_rules")
    op.drop_column("users", "out_of_office_until")
    op.drop_column("users", "out_of_office_from")
