"""Batch schemas: BatchCreate (the request) and BatchRead (one result per record)."""

from __future__ import annotations

import uuid
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.schemas.common import InputSchema

BATCH_LIMIT = 1000


class BatchCreate(InputSchema):
    validated_later: ClassVar[frozenset[str]] = frozenset({"records"})

    mode: Literal["create", "upsert"] = Field(
        description="`create`: every record is new; `upsert`: update the record matching the upsert key, else create"
    )
    records: list[dict[str, Any]] = Field(
        min_length=1,
        max_length=BATCH_LIMIT,
        description="Bodies as for POST (create) or PATCH (upsert: only the fields sent change on a match)",
    )

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "mode": "upsert",
                    "records": [
                        {"external_id": "C001", "first_name": "伟", "last_name": "张", "email": "zhang.wei@example.cn"},
                        {"email": "li.na@example.cn", "title": "采购经理"},
                    ],
                }
            ]
        }
    )


class BatchResultRead(BaseModel):
    index: int = Field(description="The record's position in `records`")
    status: Literal["created", "updated", "unchanged", "failed"]
    id: uuid.UUID | None = None
    problem: dict[str, Any] | None = Field(
        default=None, description="For a failed record: a problem document (RFC 9457), with `errors` for field errors"
    )


class BatchRead(BaseModel):
    results: list[BatchResultRead]
