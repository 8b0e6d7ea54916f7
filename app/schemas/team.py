"""Team schemas: TeamCreate / TeamUpdate / TeamRead."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import ClassVar

from pydantic import ConfigDict, Field

from app.schemas.common import InputSchema, Page, PatchSchema, ReadSchema, Text200

MemberIds = list[uuid.UUID]


class TeamCreate(InputSchema):
    name: str = Field(min_length=1, max_length=200)
    description: Text200 = None
    member_ids: MemberIds = Field(default_factory=list, max_length=1000)

    model_config = ConfigDict(json_schema_extra={"examples": [{"name": "华东销售部", "member_ids": []}]})


class TeamUpdate(PatchSchema):
    non_nullable: ClassVar[frozenset[str]] = frozenset({"name", "member_ids"})

    name: str | None = Field(default=None, min_length=1, max_length=200)
    description: Text200 = None
    member_ids: MemberIds | None = Field(default=None, max_length=1000, description="Replaces the membership")


class TeamRead(ReadSchema):
    id: uuid.UUID
    name: str
    description: str | None
    member_ids: list[uuid.UUID]
    created_at: datetime
    updated_at: datetime
    version: int


class TeamPage(Page[TeamRead]):
    pass
