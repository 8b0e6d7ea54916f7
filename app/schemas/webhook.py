"""Webhook schemas: WebhookCreate / WebhookUpdate / WebhookRead, secrets, deliveries."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from pydantic import AliasChoices, ConfigDict, Field, StringConstraints

from app.core.enums import DeliveryStatus
from app.schemas.common import InputSchema, Page, PatchSchema, ReadSchema

EventPattern = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, min_length=1, max_length=100, pattern=r"^(\*|[a-z_]+\.\*|[a-z_]+\.[a-z_]+)$"
    ),
]
WebhookUrl = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2048)]
Description = Annotated[str | None, Field(default=None, max_length=500)]


class WebhookCreate(InputSchema):
    url: WebhookUrl = Field(description="An https URL on a public address")
    events: list[EventPattern] = Field(
        min_length=1, max_length=100, description="Event types to receive: `contact.created`, `contact.*` or `*`"
    )
    description: Description = None
    active: bool = True

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"url": "https://erp.example.com/rapport", "events": ["contact.*"]}]}
    )


class WebhookUpdate(PatchSchema):
    non_nullable = frozenset({"url", "events", "active"})

    url: WebhookUrl | None = None
    events: list[EventPattern] | None = Field(default=None, min_length=1, max_length=100)
    description: Description = None
    active: bool | None = Field(default=None, description="true re-enables a disabled subscription")


class WebhookRead(ReadSchema):
    id: uuid.UUID
    url: str
    events: list[str] = Field(validation_alias=AliasChoices("event_types", "events"))
    description: str | None
    active: bool
    disabled_reason: str | None
    disabled_at: datetime | None
    previous_secret_expires_at: datetime | None = Field(
        description="Until then the previous secret also signs every delivery (set by a rotation)"
    )
    consecutive_failures: int
    failing_since: datetime | None
    last_success_at: datetime | None
    created_at: datetime
    updated_at: datetime
    version: int


class WebhookWithSecret(WebhookRead):
    secret: str | None = Field(
        description="`whsec_…`: verifies the `webhook-signature` header. Shown once: null in an idempotent replay"
    )


class WebhookPage(Page[WebhookRead]):
    pass


class SecretRotation(InputSchema):
    overlap_seconds: int = Field(
        default=24 * 3600, ge=0, le=7 * 24 * 3600, description="How long the old secret keeps signing as well"
    )


class DeliveryRead(ReadSchema):
    id: uuid.UUID
    webhook_id: uuid.UUID
    event_id: uuid.UUID
    event_type: str
    entity_id: uuid.UUID
    status: DeliveryStatus
    attempts: int
    next_attempt_at: datetime | None = Field(description="When a pending delivery is tried next")
    last_attempt_at: datetime | None
    last_status_code: int | None
    last_latency_ms: int | None
    last_error: str | None
    last_response: str | None = Field(description="The start of the receiver's last reply body")
    delivered_at: datetime | None
    created_at: datetime
    attempt_log: list[dict[str, Any]] = Field(description="Every attempt: time, status code or error, latency")


class DeliveryPage(Page[DeliveryRead]):
    pass


class TestDelivery(ReadSchema):
    """The outcome of a ping sent while the request waited."""

    delivered: bool
    status_code: int | None
    latency_ms: int | None
    error: str | None
    response: str | None
