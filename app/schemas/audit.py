"""Audit trail entries as the API shows them."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import Field

from app.core.enums import AuditAction
from app.schemas.common import Page, ReadSchema


class AuditEntryRead(ReadSchema):
    id: uuid.UUID
    occurred_at: datetime
    actor_type: str = Field(description="user or api_key")
    actor_id: uuid.UUID | None
    action: AuditAction
    entity_type: str
    entity_id: uuid.UUID
    changes: dict[str, Any] = Field(description="field → {before, after}")
    request_id: str | None


class AuditEntryPage(Page[AuditEntryRead]):
    pass
