"""Contract schemas: contracts, their status transitions and documents, and contract templates."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import ClassVar

from pydantic import ConfigDict, Field, ValidationInfo, field_validator

from app.core.enums import ContractStatus
from app.schemas.common import Currency, InputSchema, Money, Page, PatchSchema, ReadSchema

MAX_TEMPLATE_CHARS = 200_000
RENEWAL_NOTICE = "The `contract.renewal_due` event goes out this many days before end_date"


def _not_before_start(end: date | None, info: ValidationInfo) -> date | None:
    start = info.data.get("start_date")
    if end is not None and start is not None and end < start:
        raise ValueError("is before start_date")
    return end


class ContractCreate(InputSchema):
    title: str = Field(min_length=1, max_length=300)
    company_id: uuid.UUID
    deal_id: uuid.UUID | None = None
    owner_id: uuid.UUID | None = Field(
        default=None,
        description="Defaults to the owner of the deal named by deal_id, else the creating user (API keys: "
        "unowned); null for an unowned contract",
    )
    template_id: uuid.UUID | None = Field(
        default=None, description="The template its document is rendered from; the built-in one when left out"
    )
    value: Money
    currency: Currency | None = Field(default=None, description="The organisation's currency when left out")
    start_date: date
    end_date: date = Field(description="On or after start_date")
    renewal_notice_days: int = Field(default=30, ge=0, le=365, description=RENEWAL_NOTICE)

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "title": "天元贸易 ERP 年度服务合同",
                    "company_id": "0193a8e2-7c1e-7c3a-9d2b-5f6e7a8b9c0d",
                    "value": "150000.00",
                    "start_date": "2027-01-01",
                    "end_date": "2027-12-31",
                }
            ]
        }
    )

    _check_end = field_validator("end_date")(_not_before_start)


class ContractUpdate(PatchSchema):
    """Everything but `renewal_notice_days` and `owner_id` changes only while the contract is a draft."""

    non_nullable: ClassVar[frozenset[str]] = frozenset(
        {"title", "company_id", "value", "currency", "start_date", "end_date", "renewal_notice_days"}
    )

    title: str | None = Field(default=None, min_length=1, max_length=300)
    company_id: uuid.UUID | None = None
    deal_id: uuid.UUID | None = None
    owner_id: uuid.UUID | None = Field(default=None, description="null leaves the contract unowned")
    template_id: uuid.UUID | None = None
    value: Money | None = None
    currency: Currency | None = None
    start_date: date | None = None
    end_date: date | None = None
    renewal_notice_days: int | None = Field(default=None, ge=0, le=365, description=RENEWAL_NOTICE)

    _check_end = field_validator("end_date")(_not_before_start)


class ContractTransition(InputSchema):
    to: ContractStatus = Field(description="The status to move to; see the transition table in the API guide")


class ContractRender(InputSchema):
    template_id: uuid.UUID | None = Field(
        default=None, description="Render with this template (and keep it on the contract); else the contract's own"
    )


class ContractRead(ReadSchema):
    id: uuid.UUID
    number: str = Field(description="HT-<year>-<sequence>, sequential per organisation and year, without gaps")
    title: str
    status: ContractStatus
    company_id: uuid.UUID
    deal_id: uuid.UUID | None
    owner_id: uuid.UUID | None
    template_id: uuid.UUID | None
    value: Decimal
    currency: str
    start_date: date
    end_date: date
    renewal_notice_days: int
    renewal_notified_at: datetime | None
    signed_at: datetime | None
    ended_at: datetime | None = Field(description="When it expired or was terminated")
    document_rendered_at: datetime | None = Field(description="GET …/document returns the rendered HTML")
    created_at: datetime
    updated_at: datetime
    version: int


class ContractPage(Page[ContractRead]):
    pass


class ContractTemplateCreate(InputSchema):
    name: str = Field(min_length=1, max_length=200)
    body: str = Field(
        min_length=1,
        max_length=MAX_TEMPLATE_CHARS,
        description="Jinja2 HTML, rendered in a sandbox with autoescaping; sees `contract`, `company`, "
        "`deal`, `line_items` and `organization`",
    )

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"name": "标准合同", "body": "<h1>{{ contract.number }}</h1><p>{{ company.name }}</p>"}]
        }
    )


class ContractTemplateUpdate(PatchSchema):
    non_nullable: ClassVar[frozenset[str]] = frozenset({"name", "body"})

    name: str | None = Field(default=None, min_length=1, max_length=200)
    body: str | None = Field(default=None, min_length=1, max_length=MAX_TEMPLATE_CHARS)


class ContractTemplateRead(ReadSchema):
    id: uuid.UUID
    name: str
    body: str
    created_at: datetime
    updated_at: datetime
    version: int


class ContractTemplatePage(Page[ContractTemplateRead]):
    pass
