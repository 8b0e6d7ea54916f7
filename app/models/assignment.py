"""Assignment rules: who a new contact goes to."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import BigInteger, CheckConstraint, ForeignKeyConstraint, Integer, String
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.core.enums import AssignmentStrategy
from app.models.base import Base, TenantMixin, TimestampMixin, VersionedMixin, str_enum


class AssignmentRule(TenantMixin, TimestampMixin, VersionedMixin, Base):
    __tablename__ = "assignment_rules"
    __table_args__ = (
        ForeignKeyConstraint(["organization_id", "user_id"], ["users.organization_id", "users.id"]),
        ForeignKeyConstraint(["organization_id", "team_id"], ["teams.organization_id", "teams.id"]),
        CheckConstraint("load_measure IN ('leads', 'deals')", name="load_measure"),
        CheckConstraint("follow_up_hours IS NULL OR follow_up_hours BETWEEN 0 AND 8760", name="follow_up_hours"),
    )

    name: Mapped[str] = mapped_column(String(200))
    # Rules are tried in this order (then by id); the first that matches and has someone available wins.
    priority: Mapped[int] = mapped_column(Integer, default=100)
    # A filter over contact fields; None matches every contact.
    condition: Mapped[dict[str, Any] | None] = mapped_column(JSONB, default=None)
    strategy: Mapped[AssignmentStrategy] = mapped_column(str_enum(AssignmentStrategy, "assignment_strategy"))
    user_id: Mapped[uuid.UUID | None] = mapped_column(default=None)
    team_id: Mapped[uuid.UUID | None] = mapped_column(default=None)
    load_measure: Mapped[str] = mapped_column(String(8), default="leads")
    territory_field: Mapped[str | None] = mapped_column(String(100), default=None)
    # value → {"user_id": …} or {"team_id": …}
    territory_map: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    # A follow-up task for the assignee, due this many hours after the assignment (None: no task).
    follow_up_hours: Mapped[int | None] = mapped_column(Integer, default=None)
    active: Mapped[bool] = mapped_column(default=True)
    # Round-robin position: how many contacts this rule has handed out.
    turn: Mapped[int] = mapped_column(BigInteger, default=0)
