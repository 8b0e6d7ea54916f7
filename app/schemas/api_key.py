"""API key schemas: ApiKeyCreate / ApiKeyRead / ApiKeyCreated (the only reply with the secret)."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import AwareDatetime, ConfigDict, Field

from app.core.permissions import Scope
from app.schemas.common import InputSchema, Page, ReadSchema


class ApiKeyCreate(InputSchema):
    name: str = Field(min_length=1, max_length=200)
    scopes: list[Scope] = Field(min_length=1, description="What the key may do, such as contacts:read")
    expires_at: AwareDatetime | None = Field(default=None, description="Optional expiry (with a UTC offset)")

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"name": "ERP sync", "scopes": ["contacts:read", "contacts:write"]}]}
    )


class ApiKeyRead(ReadSchema):
    id: uuid.UUID
    name: str
    prefix: str = Field(description="The key's public part, to recognise it in logs")
    scopes: list[Scope]
    created_by_id: uuid.UUID
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None


class ApiKeyCreated(ApiKeyRead):
    secret: str | None = Field(
        description="Send as `X-API-Key`. Shown once (stored only as a hash): null in an idempotent replay"
    )


class ApiKeyPage(Page[ApiKeyRead]):
    pass
