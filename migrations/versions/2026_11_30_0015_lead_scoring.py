"""Lead scoring: rules, contact activities, scores, and the grade thresholds per organisation.

Every existing contact gets a score row (0, grade D: there are no rules yet), so the lead queue
can join scores without an outer join.

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-30 06:20:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_SIGNALS = ("interaction", "email_opened", "email_clicked", "form_submitted")


def upgrade() -> None:
    op.add_column(
        "organizations",
        sa.Column(
            "lead_grade_thresholds",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default='{"A": 80, "B": 50, "C": 20}',
            nullable=False,
        ),
    )
    op.add_column("organizations", sa.Column("rescore_requested_at", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "scoring_rules",
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column(
            "kind",
            sa.Enum("fit", "behaviour", name="scoring_rule_kind", native_enum=False, create_constraint=True),
            nullable=False,
        ),
        sa.Column("condition", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column(
            "signal",
            sa.Enum(*_SIGNALS, name="activity_signal", native_enum=False, create_constraint=True),
            nullable=True,
        ),
        sa.Column("channel", sa.String(length=50), nullable=True),
        sa.Column("outcome", sa.String(length=50), nullable=True),
        sa.Column("points", sa.Integer(), nullable=False),
        sa.Column("half_life_days", sa.Numeric(precision=8, scale=2), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.CheckConstraint(
            "half_life_days IS NULL OR half_life_days > 0", name=op.f("ck_scoring_rules_half_life_positive")
        ),
        sa.CheckConstraint("points BETWEEN -1000 AND 1000", name=op.f("ck_scoring_rules_points_range")),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_scoring_rules_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("organization_id", "id", name=op.f("pk_scoring_rules")),
    )
    op.create_table(
        "contact_activities",
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("contact_id", sa.Uuid(), nullable=False),
        sa.Column(
            "signal",
            sa.Enum(*_SIGNALS, name="contact_activity_signal", native_enum=False, create_constraint=True),
            nullable=False,
        ),
        sa.Column("channel", sa.String(length=50), nullable=True),
        sa.Column("outcome", sa.String(length=50), nullable=True),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["organization_id", "contact_id"],
            ["contacts.organization_id", "contacts.id"],
            name=op.f("fk_contact_activities_organization_id_contact_id_contacts"),
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_contact_activities_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("organization_id", "id", name=op.f("pk_contact_activities")),
    )
    op.create_index(
        "ix_contact_activities_contact",
        "contact_activities",
        ["organization_id", "contact_id", "occurred_at"],
        unique=False,
    )
    op.create_table(
        "lead_scores",
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("contact_id", sa.Uuid(), nullable=False),
        sa.Column("score", sa.Integer(), nullable=False),
        sa.Column("grade", sa.String(length=1), nullable=False),
        sa.Column("scored_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["organization_id", "contact_id"],
            ["contacts.organization_id", "contacts.id"],
            name=op.f("fk_lead_scores_organization_id_contact_id_contacts"),
        ),
        sa.PrimaryKeyConstraint("organization_id", "contact_id", name=op.f("pk_lead_scores")),
    )
    op.create_index(
        "ix_lead_scores_queue",
        "lead_scores",
        ["organization_id", "grade", sa.literal_column("score DESC"), "contact_id"],
        unique=False,
    )
    op.execute(
        "INSERT INTO lead_scores (organization_id, contact_id, score, grade, scored_at) "
        "SELECT organization_id, id, 0, 'D', now() FROM contacts"
    )


def downgrade() -> None:
    op.drop_index("ix_lead_scores_queue", table_name="lead_scores")
    op.drop_table("lead_scores")
    op.drop_index("ix_contact_activities_contact", table_name="contact_activities")
    op.drop_table("contact_activities")
    op.drop_table("scoring_rules")
    op.drop_column("organizations", "rescore_requested_at")
    op.drop_column("organizations", "lead_grade_thresholds")
