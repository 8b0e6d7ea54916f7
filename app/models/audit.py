"""The audit trail: one row per change, written in the transaction that made it."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Index, String
from sqlalchemy.orm import Mapped, mapped_column

from app.core.enums import AuditAction
from app.models.base import Base, TenantMixin, str_enum, utcnow


class AuditEntry(TenantMixin, Base):
    __tablename__ = "audit_log"
    __table_args__ = (
        Index(
            "ix_audit_log_organization_id_entity",
            "organization_id",
            "entity_type",
            "entity_id",
            "id",
        ),
        Index(
            "ix_audit_log_organization_id_actor_id_id",
            "organization_id",
            "actor_id",
            "id",
        ),
    )

    occurred_at: Mapped[datetime] = mapped_column(default=utcnow)
    actor_type: Mapped[str] = mapped_column(String(16))
    actor_id: Mapped[uuid.UUID | None]
    action: Mapped[AuditAction] = mapped_column(str_enum(AuditAction, "audit_action"))
    entity_type: Mapped[str] = mapped_column(String(64))
    entity_id: Mapped[uuid.UUID]
    changes: Mapped[dict[str, Any]] = mapped_column(default=dict)
    request_id: Mapped[str | None] = mapped_column(String(128), default=None)
