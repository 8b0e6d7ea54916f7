"""Sign-up, tokens and the caller's identity."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from app.core.permissions import Scope
from app.schemas.api_key import ApiKeyRead
from app.schemas.common import Email, InputSchema
from app.schemas.organization import OrganizationRead
from app.schemas.user import UserRead


class SignupRequest(InputSchema):
    organization_name: str = Field(min_length=1, max_length=200)
    email: Email
    password: str = Field(min_length=1, max_length=256)
    full_name: str = Field(min_length=1, max_length=200)

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "organization_name": "天元贸易",
                    "email": "owner@tianyuan-trade.cn",
                    "password": "correct horse battery staple",
                    "full_name": "王芳",
                }
            ]
        }
    )


class RefreshRequest(InputSchema):
    refresh_token: str = Field(min_length=1, max_length=512)


class PasswordChange(InputSchema):
    current_password: str = Field(min_length=1, max_length=256)
    new_password: str = Field(min_length=1, max_length=256)


class TokenPair(BaseModel):
    access_token: str
    refresh_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int = Field(description="Seconds until the access token expires")


class SignupResult(TokenPair):
    organization: OrganizationRead
    user: UserRead


class Me(BaseModel):
    kind: Literal["user", "api_key"]
    organization: OrganizationRead
    user: UserRead | None = None
    api_key: ApiKeyRead | None = None
    scopes: list[Scope]
