"""Custom field definitions: CustomFieldCreate / CustomFieldUpdate / CustomFieldRead."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, ClassVar

from pydantic import ConfigDict, Field, model_validator

from app.core.enums import CustomFieldEntity, CustomFieldType
from app.schemas.common import InputSchema, Page, PatchSchema, ReadSchema, Text200

Option = Annotated[str, Field(min_length=1, max_length=100)]
Options = Annotated[list[Option], Field(max_length=200)]
CHOICE_TYPES = frozenset({CustomFieldType.select, CustomFieldType.multi_select})


def options_problem(field_type: CustomFieldType, options: list[str]) -> str | None:
    """What is wrong with `options` for a field of `field_type`, if anything."""
    if field_type in CHOICE_TYPES and not options:
        return f"a {field_type.value} field needs options"
    if field_type not in CHOICE_TYPES and options:
        return f"a {field_type.value} field takes no options"
    if len(set(options)) != len(options):
        return "options must be unique"
    return None


class CustomFieldCreate(InputSchema):
    entity: CustomFieldEntity
    key: str = Field(
        pattern=r"^[a-z][a-z0-9_]{0,63}$",
        description="Name used in `custom_fields` and filters",
    )
    label: str = Field(min_length=1, max_length=200)
    type: CustomFieldType
    options: Options = Field(
        default_factory=list,
        description="The choices of a select or multi_select field",
    )
    required: bool = False
    description: Text200 = None

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "entity": "contact",
                    "key": "customer_grade",
                    "label": "客户等级",
                    "type": "select",
                    "options": ["A", "B", "C"],
                }
            ]
        }
    )

    @model_validator(mode="after")
    def _options_fit_type(self) -> CustomFieldCreate:
        if problem := options_problem(self.type, self.options):
            raise ValueError(problem)
        return self


class CustomFieldUpdate(PatchSchema):
    """Key, entity and type are fixed once created: stored values depend on them."""

    non_nullable: ClassVar[frozenset[str]] = frozenset({"label", "options", "required"})

    label: str | None = Field(default=None, min_length=1, max_length=200)
    options: Options | None = None
    required: bool | None = None
    description: Text200 = None


class CustomFieldRead(ReadSchema):
    id: uuid.UUID
    entity: CustomFieldEntity
    key: str
    label: str
    type: CustomFieldType
    options: list[str]
    required: bool
    description: str | None
    created_at: datetime
    updated_at: datetime
    version: int


class CustomFieldPage(Page[CustomFieldRead]):
    pass
