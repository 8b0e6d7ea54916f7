"""Lifecycle stages as the brief has them, their history, and the rules that move contacts.

The stages become subscriber, lead, marketing_qualified, sales_qualified, opportunity, customer,
repeat_customer, loyal, churned: marketing_qualified_lead and sales_qualified_lead are renamed,
evangelist becomes loyal and other becomes lead.

Revision ID: 0017
Revises: 0016
Create Date: 2026-11-30 06:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

STAGES = (
    "subscriber",
    "lead",
    "marketing_qualified",
    "sales_qualified",
    "opportunity",
    "customer",
    "repeat_customer",
    "loyal",
    "churned",
)
OLD_STAGES = (
    "subscriber",
    "lead",
    "marketing_qualified_lead",
    "sales_qualified_lead",
    "opportunity",
    "customer",
    "evangelist",
    "other",
)
RENAMED = {
    "marketing_qualified_lead": "marketing_qualified",
    "sales_qualified_lead": "sales_qualified",
    "evangelist": "loyal",
    "other": "lead",
}
RESTORED = {
    "marketing_qualified": "marketing_qualified_lead",
    "sales_qualified": "sales_qualified_lead",
    "loyal": "evangelist",
    "repeat_customer": "customer",
    "churned": "other",
}
RULES = '{"mql_score": null, "sql_score": null, "loyal_orders": 5, "loyal_spend": null, "churn_days": 180}'


def _check(stages: Sequence[str]) -> str:
    return "lifecycle_stage IN (" + ", ".join(f"'{stage}'" for stage in stages) + ")"


def _restage(mapping: dict[str, str], stages: Sequence[str]) -> None:
    op.drop_constraint(op.f("ck_contacts_lifecycle_stage"), "contacts", type_="check")
    op.alter_column(
        "contacts", "lifecycle_stage", type_=sa.String(length=max(len(stage) for stage in (*stages, *mapping)))
    )
    for old, new in mapping.items():
        op.execute(
            sa.text("UPDATE contacts SET lifecycle_stage = :new WHERE lifecycle_stage = :old").bindparams(
                old=old, new=new
            )
        )
    op.alter_column("contacts", "lifecycle_stage", type_=sa.String(length=max(len(stage) for stage in stages)))
    op.create_check_constraint(op.f("ck_contacts_lifecycle_stage"), "contacts", _check(stages))


def upgrade() -> None:
    _restage(RENAMED, STAGES)
    op.add_column(
        "organizations",
        sa.Column("lifecycle_rules", postgresql.JSONB(astext_type=sa.Text()), server_default=RULES, nullable=False),
    )
    op.create_table(
        "lifecycle_changes",
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("contact_id", sa.Uuid(), nullable=False),
        sa.Column(
            "from_stage",
            sa.Enum(*STAGES, name="lifecycle_from_stage", native_enum=False, create_constraint=True),
            nullable=True,
        ),
        sa.Column(
            "to_stage",
            sa.Enum(*STAGES, name="lifecycle_to_stage", native_enum=False, create_constraint=True),
            nullable=False,
        ),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor_type", sa.String(length=16), nullable=False),
        sa.Column("actor_id", sa.Uuid(), nullable=True),
        sa.ForeignKeyConstraint(
            ["organization_id", "contact_id"],
            ["contacts.organization_id", "contacts.id"],
            name=op.f("fk_lifecycle_changes_organization_id_contact_id_contacts"),
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_lifecycle_changes_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("organization_id", "id", name=op.f("pk_lifecycle_changes")),
    )
    op.create_index(
        "ix_lifecycle_changes_contact", "lifecycle_changes", ["organization_id", "contact_id", "changed_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_lifecycle_changes_contact", table_name="lifecycle_changes")
    op.drop_table("lifecycle_changes")
    op.drop_column("organizations", "lifecycle_rules")
    _restage(RESTORED, OLD_STAGES)
