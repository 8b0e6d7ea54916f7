"""User schemas: UserCreate / UserUpdate / UserRead."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import ClassVar

from pydantic import ConfigDict, Field

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


class UserRead(ReadSchema):
    id: uuid.UUID
    email: str
    full_name: str
    role: Role
    is_active: bool
    deactivated_at: datetime | None
    created_at: datetime
    updated_at: datetime
    version: int


class UserPage(Page[UserRead]):
    pass
