"""Lead scoring: the rules, the behaviour they weigh, and each contact's score.

Scores live in their own narrow table rather than on `contacts`: a bulk rescore after a rule
change rewrites up to every contact's score, and a contacts row carries a dozen indexes (GIN
grams among them) that each such UPDATE would have to maintain.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKeyConstraint, Index, Integer, Numeric, String, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.core.enums import ActivitySignal, ScoringRuleKind
from app.models.base import Base, TenantMixin, TimestampMixin, VersionedMixin, str_enum, utcnow


class ScoringRule(TenantMixin, TimestampMixin, VersionedMixin, Base):
    __tablename__ = "scoring_rules"
    __table_args__ = (
        CheckConstraint("points BETWEEN -1000 AND 1000", name="points_range"),
        CheckConstraint("half_life_days IS NULL OR half_life_days > 0", name="half_life_positive"),
    )

    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[ScoringRuleKind] = mapped_column(str_enum(ScoringRuleKind, "scoring_rule_kind"))
    # Fit rules: a filter-DSL condition over the contact's fields.
    condition: Mapped[dict[str, Any] | None] = mapped_column(JSONB, default=None)
    # Behaviour rules: the activity that earns the points, narrowed by channel and outcome.
    signal: Mapped[ActivitySignal | None] = mapped_column(str_enum(ActivitySignal, "activity_signal"), default=None)
    channel: Mapped[str | None] = mapped_column(String(50), default=None)
    outcome: Mapped[str | None] = mapped_column(String(50), default=None)
    # Points per match (per activity for behaviour), halved every `half_life_days` of age.
    points: Mapped[int] = mapped_column(Integer)
    half_life_days: Mapped[Decimal | None] = mapped_column(Numeric(8, 2), default=None)
    active: Mapped[bool] = mapped_column(default=True)


class ContactActivity(TenantMixin, Base):
    """One thing a contact did: opened or clicked an e-mail, submitted a form, had an interaction."""

    __tablename__ = "contact_activities"
    __table_args__ = (
        ForeignKeyConstraint(["organization_id", "contact_id"], ["contacts.organization_id", "contacts.id"]),
        Index("ix_contact_activities_contact", "organization_id", "contact_id", "occurred_at"),
    )

    contact_id: Mapped[uuid.UUID]
    signal: Mapped[ActivitySignal] = mapped_column(str_enum(ActivitySignal, "contact_activity_signal"))
    channel: Mapped[str | None] = mapped_column(String(50), default=None)
    outcome: Mapped[str | None] = mapped_column(String(50), default=None)
    occurred_at: Mapped[datetime]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class LeadScore(Base):
    __tablename__ = "lead_scores"
    __table_args__ = (
        ForeignKeyConstraint(["organization_id", "contact_id"], ["contacts.organization_id", "contacts.id"]),
        # The lead queue: best grade, then highest score.
        Index("ix_lead_scores_queue", "organization_id", "grade", text("score DESC"), "contact_id"),
    )

    organization_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    contact_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    score: Mapped[int] = mapped_column(Integer)
    grade: Mapped[str] = mapped_column(String(1))
    scored_at: Mapped[datetime]
