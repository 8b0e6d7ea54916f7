"""Webhook subscriptions and their deliveries."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKeyConstraint, Index, LargeBinary, String, UniqueConstraint, text
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.core.enums import DeliveryStatus
from app.models.base import Base, TenantMixin, TimestampMixin, VersionedMixin, str_enum, utcnow

# Deliveries the relay still has to send (or is sending under a lease).
OPEN_DELIVERY = text("status IN ('pending', 'sending')")


class Webhook(TenantMixin, TimestampMixin, VersionedMixin, Base):
    __tablename__ = "webhooks"

    url: Mapped[str] = mapped_column(String(2048))
    description: Mapped[str | None] = mapped_column(String(500), default=None)
    event_types: Mapped[list[str]] = mapped_column(ARRAY(String(100)))
    active: Mapped[bool] = mapped_column(default=True)
    disabled_reason: Mapped[str | None] = mapped_column(String(300), default=None)
    disabled_at: Mapped[datetime | None] = mapped_column(default=None)
    # Sealed with AES-GCM (app.core.secrets): the relay must sign with the secret, so it cannot be a hash.
    secret_sealed: Mapped[bytes] = mapped_column(LargeBinary)
    previous_secret_sealed: Mapped[bytes | None] = mapped_column(LargeBinary, default=None)
    previous_secret_expires_at: Mapped[datetime | None] = mapped_column(default=None)
    consecutive_failures: Mapped[int] = mapped_column(default=0)
    failing_since: Mapped[datetime | None] = mapped_column(default=None)
    last_success_at: Mapped[datetime | None] = mapped_column(default=None)


class WebhookDelivery(TenantMixin, Base):
    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        ForeignKeyConstraint(
            ["organization_id", "webhook_id"], ["webhooks.organization_id", "webhooks.id"], ondelete="CASCADE"
        ),
        ForeignKeyConstraint(
            ["organization_id", "event_id"], ["events.organization_id", "events.id"], ondelete="CASCADE"
        ),
        UniqueConstraint("organization_id", "webhook_id", "event_id"),
        # Each subscription's due deliveries, oldest first: what the relay claims.
        Index(
            "ix_webhook_deliveries_due",
            "organization_id",
            "webhook_id",
            "next_attempt_at",
            postgresql_where=OPEN_DELIVERY,
        ),
        # An entity's open deliveries in event order: the one to release when the one before ends.
        Index(
            "ix_webhook_deliveries_open_entity",
            "organization_id",
            "webhook_id",
            "entity_id",
            "event_position",
            postgresql_where=OPEN_DELIVERY,
        ),
    )

    webhook_id: Mapped[uuid.UUID]
    event_id: Mapped[uuid.UUID]
    event_position: Mapped[int] = mapped_column(BigInteger)
    event_type: Mapped[str] = mapped_column(String(64))
    entity_id: Mapped[uuid.UUID]
    status: Mapped[DeliveryStatus] = mapped_column(
        str_enum(DeliveryStatus, "delivery_status"), default=DeliveryStatus.pending
    )
    attempts: Mapped[int] = mapped_column(default=0)
    # When a pending delivery is due, or when a sending one's lease runs out; NULL while it waits
    # for an earlier delivery of the same entity to the same subscription to end.
    next_attempt_at: Mapped[datetime | None] = mapped_column(default=utcnow)
    claim_token: Mapped[uuid.UUID | None] = mapped_column(default=None)
    last_attempt_at: Mapped[datetime | None] = mapped_column(default=None)
    last_status_code: Mapped[int | None] = mapped_column(default=None)
    last_latency_ms: Mapped[int | None] = mapped_column(default=None)
    last_error: Mapped[str | None] = mapped_column(String(500), default=None)
    last_response: Mapped[str | None] = mapped_column(String(2048), default=None)
    delivered_at: Mapped[datetime | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    attempt_log: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, default=list)
