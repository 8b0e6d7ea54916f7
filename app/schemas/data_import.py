"""Import schemas: ImportCreate (the multipart form's fields, the file aside) / ImportRead."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import Field, computed_field

from app.schemas.common import InputSchema, ReadSchema


class ImportCreate(InputSchema):
    entity: Literal["contacts", "companies", "deals"]
    mode: Literal["create", "upsert", "skip_duplicates"] = Field(
        default="create",
        description=(
            "create: every row is a new record (a taken external_id fails the row); upsert: a row "
            "matching a record by external_id, else e-mail (contacts) or domain (companies), updates "
            "it (deals: by external_id only); skip_duplicates: such a row, or a row repeating an earlier one's key, "
            "is skipped"
        ),
    )
    mapping: dict[str, str | None] | None = Field(
        default=None,
        description="{column header: field}; headers are mapped automatically when omitted (null ignores a column)",
    )


class ImportRead(ReadSchema):
    id: uuid.UUID
    entity: str
    mode: str
    file_name: str
    file_format: str
    encoding: str | None
    file_size: int
    columns: list[str] = Field(description="The file's header, in order")
    mapping: dict[str, Any] = Field(description="The mapping in use: {column header: field}")
    status: Literal["pending", "running", "done", "failed", "cancelled"]
    total: int | None = Field(description="Data rows in the file (counted when the job starts)")
    processed: int
    created: int
    updated: int
    unchanged: int
    skipped: int
    failed: int
    companies_created: int = Field(description="Companies a contacts import created for the rows naming one")
    error: str | None
    runs: int = Field(description="Times a worker took the import up (more than one: it resumed)")
    timings: dict[str, Any] = Field(
        description="Seconds the writer waited for checked rows (`check`) and spent writing them (`write`)"
    )
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    @computed_field(description="Columns no field takes")  # type: ignore[prop-decorator]
    @property
    def ignored_columns(self) -> list[str]:
        return [column for column in self.columns if not self.mapping.get(column)]

    @computed_field  # type: ignore[prop-decorator]
    @property
    def percent(self) -> float:
        if not self.total:
            return 100.0 if self.status == "done" else 0.0
        return round(100 * self.processed / self.total, 1)
