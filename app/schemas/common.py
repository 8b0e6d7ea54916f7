"""Base schemas, reusable field types and the shared reply shapes (pages, problems)."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, ClassVar, Final, Generic, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
)

from app.core import normalize
from app.core.settings import get_settings

T = TypeVar("T")
CENT: Final = Decimal("0.01")


class InputSchema(BaseModel):
    """Request bodies: unknown fields are a 422, so nothing is mass-assigned by accident."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    # Fields whose items are validated one by one later (a batch's records), each on its own.
    validated_later: ClassVar[frozenset[str]] = frozenset()

    @field_validator("*", mode="before")
    @classmethod
    def _refuse_nul(cls, value: Any, info: ValidationInfo) -> Any:
        # PostgreSQL's text cannot hold U+0000: refused here, a 422 on its field, rather than
        # failing the statement (and, in a batch, every record written with it).
        if info.field_name not in cls.validated_later and holds_nul(value):
            raise ValueError("must not contain the NUL character (U+0000)")
        return value


def holds_nul(value: Any) -> bool:
    """Whether a string in the value, at any depth of lists and objects, holds U+0000."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(holds_nul(key) or holds_nul(item) for key, item in value.items())
    if isinstance(value, list | tuple):
        return any(holds_nul(item) for item in value)
    return False


class PatchSchema(InputSchema):
    """PATCH bodies: only the fields sent change; `null` clears a field that may be empty."""

    non_nullable: ClassVar[frozenset[str]] = frozenset()

    @field_validator("*", mode="after")
    @classmethod
    def _refuse_null_where_required(cls, value: Any, info: ValidationInfo) -> Any:
        if value is None and info.field_name in cls.non_nullable:
            raise ValueError("cannot be null")
        return value

    def changes(self) -> dict[str, Any]:
        """The fields that were sent, nested models as plain dicts."""
        return self.model_dump(include=self.model_fields_set)


class ReadSchema(BaseModel):
    model_config = ConfigDict(from_attributes=True, json_schema_mode_override="serialization")


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page")


class ProblemFieldError(BaseModel):
    loc: list[str | int]
    msg: str


class Problem(BaseModel):
    """RFC 9457 problem document; every error reply has this shape."""

    type: str = Field(examples=["urn:rapport:problem:not-found"])
    title: str
    status: int
    detail: str
    instance: str | None = None
    request_id: str | None = None
    errors: list[ProblemFieldError] | None = Field(default=None, description="Present on validation failures")


def _blank_to_none(value: Any) -> Any:
    if isinstance(value, str):
        value = normalize.clean_text(value)
        return value or None
    return value


def _phone(value: str) -> str:
    return normalize.normalize_phone(value, get_settings().default_phone_region)


# Optional free text: trimmed, NFC, blank means null.
Text20 = Annotated[Annotated[str, Field(max_length=20)] | None, BeforeValidator(_blank_to_none)]
Text50 = Annotated[Annotated[str, Field(max_length=50)] | None, BeforeValidator(_blank_to_none)]
Text100 = Annotated[Annotated[str, Field(max_length=100)] | None, BeforeValidator(_blank_to_none)]
Text200 = Annotated[Annotated[str, Field(max_length=200)] | None, BeforeValidator(_blank_to_none)]
Text300 = Annotated[Annotated[str, Field(max_length=300)] | None, BeforeValidator(_blank_to_none)]
Text500 = Annotated[Annotated[str, Field(max_length=500)] | None, BeforeValidator(_blank_to_none)]
Text2000 = Annotated[Annotated[str, Field(max_length=2000)] | None, BeforeValidator(_blank_to_none)]


Email = Annotated[
    str,
    Field(max_length=320, json_schema_extra={"format": "email"}),
    AfterValidator(normalize.normalize_email),
]
Phone = Annotated[
    str,
    Field(
        max_length=40,
        description="Any common notation; stored as E.164",
        examples=["+8613800138000"],
    ),
    AfterValidator(_phone),
]
CountryCode = Annotated[
    str,
    Field(min_length=2, max_length=2, examples=["CN"]),
    AfterValidator(normalize.normalize_country),
]
Currency = Annotated[
    str,
    Field(min_length=3, max_length=3, examples=["CNY"], description="ISO 4217 code"),
    AfterValidator(normalize.normalize_currency),
]
Money = Annotated[
    Decimal,
    Field(ge=0, max_digits=18, decimal_places=2, description="A decimal string (or number), at most 2 decimals"),
    AfterValidator(lambda amount: amount.quantize(CENT)),
]
Domain = Annotated[
    str,
    Field(max_length=300, examples=["tianyuan-trade.cn"]),
    AfterValidator(normalize.normalize_domain),
]
Tags = Annotated[
    list[Annotated[str, Field(max_length=200)]],
    AfterValidator(normalize.normalize_tags),
]
ExternalId = Annotated[
    Annotated[str, Field(max_length=200)] | None,
    BeforeValidator(_blank_to_none),
    Field(description="Id in another system (ERP); unique per organisation"),
]


def _without_sealed(values: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in values.items() if not (isinstance(value, dict) and "$sealed" in value)}


# Custom field values as replies, events and exports show them: `secret` values are left out
# (an owner's or admin's single read adds them back in clear, audited).
PublicCustomFields = Annotated[dict[str, Any], AfterValidator(_without_sealed)]
