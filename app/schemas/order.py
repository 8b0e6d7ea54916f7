"""Order schemas: OrderCreate / OrderUpdate / OrderRead, their line items and status transitions.

Amounts (line net and tax amounts, subtotal, tax total, total) appear only in replies: the
server computes them, and a body that sends them is refused like any unknown field."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any, ClassVar

from pydantic import ConfigDict, Field, model_validator

from app.core.enums import OrderStatus
from app.schemas.common import Currency, InputSchema, Page, PatchSchema, ReadSchema, Text2000
from app.schemas.deal import MAX_LINE_ITEMS, LineItemCreate


class OrderLineCreate(LineItemCreate):
    tax_percent: Decimal = Field(default=Decimal(0), ge=0, le=100, max_digits=5, decimal_places=2)


class OrderLineRead(ReadSchema):
    id: uuid.UUID
    position: int
    product_id: uuid.UUID | None
    name: str
    quantity: Decimal
    unit_price: Decimal
    discount_percent: Decimal
    tax_percent: Decimal
    net_amount: Decimal = Field(description="quantity × unit_price × (1 − discount), rounded half up to cents")
    tax_amount: Decimal = Field(description="net_amount × tax, rounded half up to cents")


def _needs_customer(values: Any) -> Any:
    if isinstance(values, dict) and values.get("contact_id") is None and values.get("company_id") is None:
        raise ValueError("an order needs a contact_id, a company_id or both")
    return values


class OrderCreate(InputSchema):
    contact_id: uuid.UUID | None = None
    company_id: uuid.UUID | None = None
    deal_id: uuid.UUID | None = None
    owner_id: uuid.UUID | None = Field(
        default=None,
        description="Defaults to the owner of the deal named by deal_id, else the creating user (API keys: "
        "unowned); null for an unowned order",
    )
    currency: Currency | None = Field(default=None, description="The organisation's currency when left out")
    line_items: list[OrderLineCreate] = Field(default_factory=list, max_length=MAX_LINE_ITEMS)
    notes: Text2000 = None

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "company_id": "0193a8e2-7c1e-7c3a-9d2b-5f6e7a8b9c0d",
                    "line_items": [
                        {"name": "ERP 标准版（年）", "quantity": 2, "unit_price": "12800.00", "tax_percent": "13"}
                    ],
                }
            ]
        }
    )

    _check_customer = model_validator(mode="before")(_needs_customer)


class OrderUpdate(PatchSchema):
    """Everything but `notes` and `owner_id` changes only while the order is a draft."""

    non_nullable: ClassVar[frozenset[str]] = frozenset({"currency", "line_items"})

    contact_id: uuid.UUID | None = None
    company_id: uuid.UUID | None = None
    deal_id: uuid.UUID | None = None
    owner_id: uuid.UUID | None = Field(default=None, description="null leaves the order unowned")
    currency: Currency | None = None
    line_items: list[OrderLineCreate] | None = Field(
        default=None, max_length=MAX_LINE_ITEMS, description="Replaces the order's line items"
    )
    notes: Text2000 = None


class OrderTransition(InputSchema):
    to: OrderStatus = Field(description="The status to move to; see the transition table in the API guide")


class OrderRead(ReadSchema):
    id: uuid.UUID
    status: OrderStatus
    contact_id: uuid.UUID | None
    company_id: uuid.UUID | None
    deal_id: uuid.UUID | None
    owner_id: uuid.UUID | None
    currency: str
    line_items: list[OrderLineRead]
    subtotal: Decimal = Field(description="The sum of the lines' net amounts")
    tax_total: Decimal = Field(description="The sum of the lines' tax amounts")
    total: Decimal = Field(description="subtotal + tax_total")
    notes: str | None
    confirmed_at: datetime | None
    fulfilled_at: datetime | None
    paid_at: datetime | None
    cancelled_at: datetime | None
    created_at: datetime
    updated_at: datetime
    version: int


class OrderPage(Page[OrderRead]):
    pass
