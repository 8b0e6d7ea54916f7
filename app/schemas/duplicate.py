"""Duplicate schemas: DuplicateRead (a likely pair) and its page; DuplicateScanRead (a stored scan)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from app.schemas.common import Page, ReadSchema


class DuplicateRead(BaseModel):
    ids: tuple[uuid.UUID, uuid.UUID] = Field(description="The two records, the older id first")
    score: float = Field(ge=0, le=1, description="How likely the two are one: reasons combined as independent evidence")
    reasons: list[str]


class DuplicatePage(Page[DuplicateRead]):
    scan_id: uuid.UUID | None = Field(
        default=None, description="The stored scan the pairs come from; null when they were found for this request"
    )
    scanned_at: datetime | None = Field(default=None, description="When that scan finished")


class DuplicateScanRead(ReadSchema):
    id: uuid.UUID
    entity: str
    status: Literal["pending", "running", "done", "failed"]
    pairs: int = Field(description="Pairs found (by the organisation's owner's sight; readers see their share)")
    error: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
