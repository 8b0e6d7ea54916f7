"""Organisation schemas: OrganizationRead / OrganizationUpdate."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import ClassVar

from pydantic import Field

from app.core.permissions import Visibility
from app.schemas.common import Currency, PatchSchema, ReadSchema


class OrganizationRead(ReadSchema):
    id: uuid.UUID
    name: str
    record_visibility: Visibility = Field(description="What sales and support users see: all, team or own records")
    merge_email_duplicates: bool = Field(
        description="A POST /contacts whose e-mail an existing contact has fills that contact in instead (200)"
    )
    currency: str = Field(description="ISO 4217 code deals and products use unless they name another")
    created_at: datetime
    updated_at: datetime
    version: int


class OrganizationUpdate(PatchSchema):
    non_nullable: ClassVar[frozenset[str]] = frozenset(
        {"name", "record_visibility", "merge_email_duplicates", "currency"}
    )

    name: str | None = Field(default=None, min_length=1, max_length=200)
    record_visibility: Visibility | None = None
    merge_email_duplicates: bool | None = None
    currency: Currency | None = None
