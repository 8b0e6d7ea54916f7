"""Duplicate schemas: DuplicateRead (a likely pair) and its page."""

from __future__ import annotations

import uuid

from pydantic import BaseModel, Field

from app.schemas.common import Page


class DuplicateRead(BaseModel):
    ids: tuple[uuid.UUID, uuid.UUID] = Field(description="The two records, the older id first")
    score: float = Field(ge=0, le=1, description="How likely the two are one: reasons combined as independent evidence")
    reasons: list[str]


class DuplicatePage(Page[DuplicateRead]):
    pass
