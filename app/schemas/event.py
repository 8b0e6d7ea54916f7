"""Event schemas: what `GET /events` lists and what a webhook delivery carries."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import AliasChoices, BaseModel, Field

from app.schemas.common import ReadSchema


class EventRead(ReadSchema):
    id: uuid.UUID = Field(description="Also the `webhook-id` of its deliveries: de-duplicate on it")
    type: str
    position: int = Field(description="Gapless, in commit order, per organisation")
    timestamp: datetime = Field(validation_alias=AliasChoices("occurred_at", "timestamp"))
    entity_type: str
    entity_id: uuid.UUID
    actor_type: str = Field(description="user, api_key or system")
    actor_id: uuid.UUID | None
    request_id: str | None
    data: dict[str, Any] = Field(description="The resource as the API returned it after the change")
    changes: dict[str, Any] | None = Field(description="For updates: each changed field's before and after")


class EventPage(BaseModel):
    items: list[EventRead]
    next_cursor: str | None = Field(
        description="Poll again with this; it only moves when events were returned (null before the first one)"
    )
    has_more: bool = Field(description="More events are waiting now: poll again without pausing")


class EventTypeList(BaseModel):
    items: list[str]
