"""Lifecycle history: every change of a contact's lifecycle stage, by hand or by a rule."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKeyConstraint, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from app.core.enums import LifecycleStage
from app.models.base import Base, TenantMixin, str_enum


class LifecycleChange(TenantMixin, Base):
    __tablename__ = "lifecycle_changes"
    __table_args__ = (
        ForeignKeyConstraint(["organization_id", "contact_id"], ["contacts.organization_id", "contacts.id"]),
        Index("ix_lifecycle_changes_contact", "organization_id", "contact_id", "changed_at"),
    )

    contact_id: Mapped[uuid.UUID]
    from_stage: Mapped[LifecycleStage | None] = mapped_column(str_enum(LifecycleStage, "lifecycle_from_stage"))
    to_stage: Mapped[LifecycleStage] = mapped_column(str_enum(LifecycleStage, "lifecycle_to_stage"))
    # "manual", or the rule that moved it: score, first_order, repeat_order, loyal, inactivity.
    reason: Mapped[str] = mapped_column(String(32))
    changed_at: Mapped[datetime]
    actor_type: Mapped[str] = mapped_column(String(16))
    actor_id: Mapped[uuid.UUID | None] = mapped_column(default=None)
