"""Export schemas: ExportCreate / ExportRead."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from app.schemas.common import InputSchema, ReadSchema


class ExportCreate(InputSchema):
    entity: Literal["contacts", "companies"]
    format: Literal["csv", "xlsx"] = "csv"
    filter: dict[str, Any] | None = Field(default=None, description="The filter DSL, as in POST /<entity>/search")
    q: str | None = Field(default=None, max_length=200, description="Substring search, as ?q=")
    archived: bool = False
    columns: list[str] | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="The columns, in order (a name that is no field of the record is a 422); all when omitted",
    )


class ExportRead(ReadSchema):
    id: uuid.UUID
    entity: str
    format: str
    status: Literal["pending", "running", "done", "failed"]
    rows: int
    error: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    expires_at: datetime | None = Field(description="The file is deleted after this")
