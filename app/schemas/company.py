"""Company schemas: CompanyCreate / CompanyUpdate / CompanyRead."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, ClassVar

from pydantic import ConfigDict, Field

from app.core.enums import CompanySize
from app.schemas.common import (
    CountryCode,
    Domain,
    ExternalId,
    InputSchema,
    Page,
    PatchSchema,
    Phone,
    PublicCustomFields,
    ReadSchema,
    Tags,
    Text20,
    Text100,
    Text300,
)


class CompanyCreate(InputSchema):
    name: str = Field(min_length=1, max_length=300)
    domain: Domain | None = None
    industry: Text100 = None
    size: CompanySize | None = Field(default=None, description="Employee count band")
    phone: Phone | None = None
    address_line1: Text300 = None
    address_line2: Text300 = None
    city: Text100 = None
    region: Text100 = Field(default=None, description="Province or state")
    postal_code: Text20 = None
    country: CountryCode | None = None
    owner_id: uuid.UUID | None = Field(
        default=None,
        description="Defaults to the creating user; API keys create unowned companies",
    )
    tags: Tags = Field(default_factory=list)
    external_id: ExternalId = None
    custom_fields: dict[str, Any] = Field(default_factory=dict)

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "name": "上海天元贸易有限公司",
                    "domain": "tianyuan-trade.cn",
                    "industry": "贸易",
                    "size": "51-200",
                    "city": "上海",
                    "country": "CN",
                    "external_id": "C001",
                }
            ]
        }
    )


class CompanyUpdate(PatchSchema):
    non_nullable: ClassVar[frozenset[str]] = frozenset({"name", "tags", "custom_fields"})

    name: str | None = Field(default=None, min_length=1, max_length=300)
    domain: Domain | None = None
    industry: Text100 = None
    size: CompanySize | None = None
    phone: Phone | None = None
    address_line1: Text300 = None
    address_line2: Text300 = None
    city: Text100 = None
    region: Text100 = None
    postal_code: Text20 = None
    country: CountryCode | None = None
    owner_id: uuid.UUID | None = None
    tags: Tags | None = None
    external_id: ExternalId = None
    custom_fields: dict[str, Any] | None = Field(
        default=None,
        description="Merged into the stored values; a key set to null is removed",
    )

    model_config = ConfigDict(json_schema_extra={"examples": [{"industry": "制造业", "size": "201-500"}]})


class CompanyRead(ReadSchema):
    id: uuid.UUID
    name: str
    domain: str | None
    industry: str | None
    size: CompanySize | None
    phone: str | None
    address_line1: str | None
    address_line2: str | None
    city: str | None
    region: str | None
    postal_code: str | None
    country: str | None
    owner_id: uuid.UUID | None
    tags: list[str]
    external_id: str | None
    custom_fields: PublicCustomFields
    created_at: datetime
    updated_at: datetime
    archived_at: datetime | None
    merged_into_id: uuid.UUID | None = Field(description="Set when this record was merged into that one")
    version: int


class CompanyPage(Page[CompanyRead]):
    pass
