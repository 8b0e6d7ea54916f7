"""Deal schemas: DealCreate / DealUpdate / DealRead, their contacts and line items, moves and stage history."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Any, ClassVar

from pydantic import ConfigDict, Field, model_validator

from app.core.enums import ContactSource, StageKind
from app.schemas.common import (
    Currency,
    ExternalId,
    InputSchema,
    Money,
    Page,
    PatchSchema,
    PublicCustomFields,
    ReadSchema,
    Tags,
    Text100,
    Text500,
)

MAX_CONTACTS = 50
MAX_LINE_ITEMS = 200


class DealContactLink(InputSchema):
    contact_id: uuid.UUID
    role: Text100 = Field(default=None, description="Their part in the deal: decision maker, champion, user…")


class DealContactRead(ReadSchema):
    contact_id: uuid.UUID
    role: str | None


class LineItemCreate(InputSchema):
    product_id: uuid.UUID | None = Field(default=None, description="An active product; fills in name and unit price")
    name: str | None = Field(default=None, min_length=1, max_length=300, description="Required without a product")
    quantity: Decimal = Field(gt=0, max_digits=18, decimal_places=4)
    unit_price: Money | None = Field(default=None, description="The product's price when left out")
    discount_percent: Decimal = Field(default=Decimal(0), ge=0, le=100, max_digits=5, decimal_places=2)

    @model_validator(mode="after")
    def _named(self) -> LineItemCreate:
        if self.product_id is None and (self.name is None or self.unit_price is None):
            raise ValueError("a line without product_id needs a name and a unit_price")
        return self


class LineItemRead(ReadSchema):
    id: uuid.UUID
    position: int
    product_id: uuid.UUID | None
    name: str
    quantity: Decimal
    unit_price: Decimal
    discount_percent: Decimal
    amount: Decimal = Field(description="quantity × unit_price × (1 − discount), rounded half up to cents")


def _no_amount_with_lines(values: Any) -> Any:
    if isinstance(values, dict) and values.get("line_items") and values.get("amount") is not None:
        raise ValueError("amount comes from line_items when a deal has them; send one or the other")
    return values


class DealCreate(InputSchema):
    name: str = Field(min_length=1, max_length=300)
    pipeline_id: uuid.UUID | None = Field(default=None, description="The default pipeline when left out")
    stage_id: uuid.UUID | None = Field(
        default=None, description="A stage of the pipeline; its first stage when left out"
    )
    company_id: uuid.UUID | None = None
    contacts: list[DealContactLink] = Field(default_factory=list, max_length=MAX_CONTACTS)
    amount: Money | None = Field(default=None, description="Computed from line_items when the deal has them")
    currency: Currency | None = Field(default=None, description="The organisation's currency when left out")
    probability: int | None = Field(
        default=None, ge=0, le=100, description="Percent; the stage's probability (and follows it) when left out"
    )
    expected_close_date: date | None = None
    owner_id: uuid.UUID | None = Field(
        default=None, description="Defaults to the creating user; API keys create unowned deals"
    )
    source: ContactSource | None = None
    lost_reason: Text500 = None
    line_items: list[LineItemCreate] = Field(default_factory=list, max_length=MAX_LINE_ITEMS)
    tags: Tags = Field(default_factory=list)
    external_id: ExternalId = None
    custom_fields: dict[str, Any] = Field(default_factory=dict)

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "name": "天元贸易 ERP 升级",
                    "amount": "150000.00",
                    "expected_close_date": "2026-12-31",
                    "external_id": "S001",
                }
            ]
        }
    )

    _check_amount = model_validator(mode="before")(_no_amount_with_lines)


class DealUpdate(PatchSchema):
    non_nullable: ClassVar[frozenset[str]] = frozenset(
        {"name", "stage_id", "currency", "contacts", "line_items", "tags", "custom_fields"}
    )

    name: str | None = Field(default=None, min_length=1, max_length=300)
    stage_id: uuid.UUID | None = Field(
        default=None, description="Moves the deal (as POST /deals/{id}/move does); may be another pipeline's stage"
    )
    company_id: uuid.UUID | None = None
    contacts: list[DealContactLink] | None = Field(
        default=None, max_length=MAX_CONTACTS, description="Replaces the deal's contacts"
    )
    amount: Money | None = None
    currency: Currency | None = None
    probability: int | None = Field(
        default=None, ge=0, le=100, description="null goes back to following the stage's probability"
    )
    expected_close_date: date | None = None
    owner_id: uuid.UUID | None = None
    source: ContactSource | None = None
    lost_reason: Text500 = None
    line_items: list[LineItemCreate] | None = Field(
        default=None, max_length=MAX_LINE_ITEMS, description="Replaces the deal's line items"
    )
    tags: Tags | None = None
    external_id: ExternalId = None
    custom_fields: dict[str, Any] | None = Field(
        default=None, description="Merged into the stored values; a key set to null is removed"
    )

    model_config = ConfigDict(json_schema_extra={"examples": [{"amount": "180000.00", "probability": 60}]})

    _check_amount = model_validator(mode="before")(_no_amount_with_lines)


class DealMove(InputSchema):
    stage_id: uuid.UUID = Field(description="Any live stage, in this pipeline or another")
    lost_reason: Text500 = Field(default=None, description="Why it was lost, when moving to a lost stage")


class DealRead(ReadSchema):
    id: uuid.UUID
    name: str
    pipeline_id: uuid.UUID
    stage_id: uuid.UUID
    status: StageKind = Field(description="open, won or lost: the kind of the deal's stage")
    company_id: uuid.UUID | None
    contacts: list[DealContactRead]
    amount: Decimal | None
    currency: str
    probability: int
    probability_manual: bool = Field(description="true when the deal set its own probability")
    expected_close_date: date | None
    owner_id: uuid.UUID | None
    source: ContactSource | None
    lost_reason: str | None
    line_items: list[LineItemRead]
    tags: list[str]
    external_id: str | None
    custom_fields: PublicCustomFields
    stage_entered_at: datetime
    closed_at: datetime | None
    created_at: datetime
    updated_at: datetime
    archived_at: datetime | None
    version: int


class DealPage(Page[DealRead]):
    pass


class StageVisitRead(ReadSchema):
    pipeline_id: uuid.UUID
    stage_id: uuid.UUID
    entered_at: datetime
    exited_at: datetime | None
    days: float = Field(description="Time spent in the stage, so far while it is there, in days")


class StageVisitPage(Page[StageVisitRead]):
    pass
