"""The outbox: every change's event, numbered per organisation in commit order."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, TenantMixin, utcnow


class Event(TenantMixin, Base):
    __tablename__ = "events"
    __table_args__ = (
        UniqueConstraint("organization_id", "position"),
        Index("ix_events_organization_id_entity", "organization_id", "entity_type", "entity_id", "position"),
        Index("ix_events_occurred_at", "occurred_at"),
    )

    # Gapless per organisation and assigned at commit under the stream's row lock, so a reader
    # that has seen position n has seen every event committed before it.
    position: Mapped[int] = mapped_column(BigInteger)
    type: Mapped[str] = mapped_column(String(64))
    entity_type: Mapped[str] = mapped_column(String(64))
    entity_id: Mapped[uuid.UUID]
    occurred_at: Mapped[datetime] = mapped_column(default=utcnow)
    actor_type: Mapped[str] = mapped_column(String(16))
    actor_id: Mapped[uuid.UUID | None]
    request_id: Mapped[str | None] = mapped_column(String(128))
    data: Mapped[dict[str, Any]]
    changes: Mapped[dict[str, Any] | None]


class EventStream(Base):
    """The last position handed out in an organisation: its row lock orders the writers' commits."""

    __tablename__ = "event_streams"

    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True
    )
    position: Mapped[int] = mapped_column(BigInteger, default=0)


class EventFanout(Base):
    """How far the relay has turned an organisation's events into deliveries. Kept apart from
    `event_streams` so the relay never waits on (or blocks) the writers' lock."""

    __tablename__ = "event_fanout"

    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True
    )
    position: Mapped[int] = mapped_column(BigInteger, default=0)
