"""Product schemas: ProductCreate / ProductUpdate / ProductRead."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import ClassVar

from pydantic import ConfigDict, Field

from app.schemas.common import Currency, InputSchema, Money, Page, PatchSchema, ReadSchema, Text2000


class ProductCreate(InputSchema):
    sku: str = Field(min_length=1, max_length=64, description="Unique per organisation")
    name: str = Field(min_length=1, max_length=300)
    description: Text2000 = None
    price: Money
    currency: Currency | None = Field(default=None, description="The organisation's currency when left out")
    active: bool = True

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"sku": "ERP-STD", "name": "ERP 标准版（年）", "price": "12800.00"}]}
    )


class ProductUpdate(PatchSchema):
    non_nullable: ClassVar[frozenset[str]] = frozenset({"sku", "name", "price", "currency", "active"})

    sku: str | None = Field(default=None, min_length=1, max_length=64)
    name: str | None = Field(default=None, min_length=1, max_length=300)
    description: Text2000 = None
    price: Money | None = None
    currency: Currency | None = None
    active: bool | None = Field(default=None, description="Inactive products cannot be added to deals")


class ProductRead(ReadSchema):
    id: uuid.UUID
    sku: str
    name: str
    description: str | None
    price: Decimal
    currency: str
    active: bool
    created_at: datetime
    updated_at: datetime
    version: int


class ProductPage(Page[ProductRead]):
    pass
