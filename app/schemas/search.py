"""The body of `POST /<resource>/search`: the filter DSL, a text query, sort and paging."""

from __future__ import annotations

from typing import Any

from pydantic import ConfigDict, Field

from app.core.pagination import DEFAULT_LIMIT, MAX_LIMIT
from app.schemas.common import InputSchema


class SearchRequest(InputSchema):
    filter: dict[str, Any] | None = Field(
        default=None,
        description=(
            "A tree of `and`/`or` (lists), `not` (a node) and conditions `{field, op, value}`; "
            "ops: eq ne lt lte gt gte in contains starts_with is_null; custom fields as `custom_fields.<key>`"
        ),
    )
    q: str | None = Field(
        default=None,
        max_length=200,
        description="Substring search, as `?q=` on the list",
    )
    sort: list[str] = Field(
        default_factory=list,
        max_length=5,
        description='Such as ["-created_at", "last_name"]',
    )
    limit: int = Field(default=DEFAULT_LIMIT, ge=1, le=MAX_LIMIT)
    cursor: str | None = Field(default=None, max_length=2000)
    archived: bool = False

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "filter": {
                        "and": [
                            {"field": "city", "op": "eq", "value": "上海"},
                            {
                                "field": "lifecycle_stage",
                                "op": "in",
                                "value": ["lead", "customer"],
                            },
                        ]
                    },
                    "sort": ["-created_at"],
                    "limit": 50,
                }
            ]
        }
    )
