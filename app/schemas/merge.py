"""Merge schemas: MergeCreate (the request) and MergeRead (the survivor and what moved)."""

from __future__ import annotations

import uuid
from typing import Any

from pydantic import BaseModel, Field

from app.schemas.common import InputSchema


class MergeCreate(InputSchema):
    merge_ids: list[uuid.UUID] = Field(
        min_length=1, max_length=50, description="The records merged into this one (archived, pointing here)"
    )
    field_choices: dict[str, uuid.UUID] = Field(
        default_factory=dict,
        description="Field → the id of the record whose value wins; otherwise lists are united, custom fields "
        "filled in, and empty fields taken from the first merged record that has a value",
    )


class MergeRead(BaseModel):
    survivor: dict[str, Any] = Field(description="The surviving record, as GET returns it")
    moved: dict[str, int] = Field(description="Rows repointed at the survivor, per `table.column`")
