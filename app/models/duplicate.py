"""Duplicate scans: the likely duplicate pairs of an organisation's contacts or companies, found
by a job and kept until the next scan (ids only: a pair holds no personal data)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Double, ForeignKeyConstraint, Index, String, Text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, TenantMixin, TimestampMixin


class DuplicateScan(TenantMixin, TimestampMixin, Base):
    __tablename__ = "duplicate_scans"

    entity: Mapped[str] = mapped_column(String(16))
    # pending → running → done | failed
    status: Mapped[str] = mapped_column(String(16), default="pending")
    pairs: Mapped[int] = mapped_column(default=0)
    error: Mapped[str | None] = mapped_column(String(500), default=None)
    requested_by_type: Mapped[str] = mapped_column(String(16))
    requested_by_id: Mapped[uuid.UUID]
    started_at: Mapped[datetime | None] = mapped_column(default=None)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)


class ScannedPair(TenantMixin, Base):
    """One pair a scan found. The ids are not foreign keys on purpose: a pair is a finding at the
    scan's time, and merges (which move every foreign key) must not rewrite it."""

    __tablename__ = "duplicate_pairs"
    __table_args__ = (
        ForeignKeyConstraint(
            ["organization_id", "scan_id"],
            ["duplicate_scans.organization_id", "duplicate_scans.id"],
            ondelete="CASCADE",
        ),
        Index(
            "ix_duplicate_pairs_scan_order",
            "organization_id",
            "scan_id",
            "score",
            "first_id",
            "second_id",
        ),
    )

    scan_id: Mapped[uuid.UUID]
    first_id: Mapped[uuid.UUID]
    second_id: Mapped[uuid.UUID]
    score: Mapped[float] = mapped_column(Double)
    reasons: Mapped[list[str]] = mapped_column(ARRAY(Text))
