"""User schemas: UserCreate / UserUpdate / UserRead."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import ClassVar

from pydantic import ConfigDict, Field, model_validator

from app.core.permissions import Role
from app.schemas.common import Email, InputSchema, Page, PatchSchema, ReadSchema


class UserCreate(InputSchema):
    email: Email
    full_name: str = Field(min_length=1, max_length=200)
    role: Role
    password: str = Field(
        min_length=1,
        max_length=256,
        description="Initial password; the user can change it",
    )

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "email": "li.na@example.cn",
                    "full_name": "李娜",
                    "role": "sales",
                    "password": "a long passphrase",
                }
            ]
        }
    )


class UserUpdate(PatchSchema):
    non_nullable: ClassVar[frozenset[str]] = frozenset({"full_name", "role"})

    full_name: str | None = Field(default=None, min_length=1, max_length=200)
    role: Role | None = None
    out_of_office_from: date | None = Field(default=None, description="First day away; assignment skips the user")
    out_of_office_until: date | None = Field(default=None, description="Last day away; none: until further notice")

    @model_validator(mode="after")
    def _period(self) -> UserUpdate:
        start, end = self.out_of_office_from, self.out_of_office_until
        if start is not None and end is not None and end < start:
            raise ValueError("out_of_office_until is before out_of_office_from")
        return self


class UserRead(ReadSchema):
    id: uuid.UUID
    email: str
    full_name: str
    role: Role
    is_active: bool
    deactivated_at: datetime | None
    out_of_office_from: date | None
    out_of_office_until: date | None
    created_at: datetime
    updated_at: datetime
    version: int


class UserPage(Page[UserRead]):
    pass
