"""Exports: a file of records written by a job, downloaded once it is done."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import String
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, TenantMixin, TimestampMixin


class Export(TenantMixin, TimestampMixin, Base):
    __tablename__ = "exports"

    entity: Mapped[str] = mapped_column(String(16))
    format: Mapped[str] = mapped_column(String(8))
    filter: Mapped[dict[str, Any] | None] = mapped_column(JSONB, default=None)
    q: Mapped[str | None] = mapped_column(String(200), default=None)
    archived: Mapped[bool] = mapped_column(default=False)
    columns: Mapped[list[str] | None] = mapped_column(ARRAY(String(200)), default=None)
    # pending → running → done | failed
    status: Mapped[str] = mapped_column(String(16), default="pending")
    rows: Mapped[int] = mapped_column(default=0)
    error: Mapped[str | None] = mapped_column(String(500), default=None)
    requested_by_type: Mapped[str] = mapped_column(String(16))
    requested_by_id: Mapped[uuid.UUID]
    started_at: Mapped[datetime | None] = mapped_column(default=None)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)
    expires_at: Mapped[datetime | None] = mapped_column(default=None)
