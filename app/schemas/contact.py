"""Contact schemas: ContactCreate / ContactUpdate / ContactRead."""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, computed_field, model_validator

from app.core.enums import ContactSource, LifecycleStage
from app.schemas.common import (
    CountryCode,
    Email,
    ExternalId,
    InputSchema,
    Page,
    PatchSchema,
    Phone,
    PublicCustomFields,
    ReadSchema,
    Tags,
    Text20,
    Text50,
    Text100,
    Text200,
    Text300,
)

_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]")


class LabelledEmail(InputSchema):
    email: Email
    label: Text50 = None


class LabelledPhone(InputSchema):
    phone: Phone
    label: Text50 = None


class _ContactFields(InputSchema):
    first_name: Text100 = None
    last_name: Text100 = None
    title: Text200 = None
    email: Email | None = None
    phone: Phone | None = None
    additional_emails: list[LabelledEmail] = Field(default_factory=list, max_length=20)
    additional_phones: list[LabelledPhone] = Field(default_factory=list, max_length=20)
    company_id: uuid.UUID | None = None
    address_line1: Text300 = None
    address_line2: Text300 = None
    city: Text100 = None
    region: Text100 = Field(default=None, description="Province or state")
    postal_code: Text20 = None
    country: CountryCode | None = None
    lifecycle_stage: LifecycleStage = LifecycleStage.lead
    owner_id: uuid.UUID | None = Field(
        default=None,
        description="Defaults to the creating user; API keys create unowned contacts",
    )
    tags: Tags = Field(default_factory=list)
    external_id: ExternalId = None
    custom_fields: dict[str, Any] = Field(default_factory=dict, description="Values for /custom-fields definitions")
    email_opt_in: bool = False
    email_opt_in_source: Text100 = Field(
        default=None,
        description="Where consent was given (web form, event…); recorded with its time",
    )


class ContactCreate(_ContactFields):
    source: ContactSource | None = Field(
        default=None,
        description="Collection channel; defaults to `api` for API keys, `manual` for people",
    )

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "first_name": "伟",
                    "last_name": "张",
                    "title": "采购经理",
                    "email": "zhang.wei@tianyuan-trade.cn",
                    "phone": "138 0013 8000",
                    "city": "上海",
                    "country": "CN",
                    "tags": ["vip"],
                    "external_id": "C001",
                }
            ]
        }
    )

    @model_validator(mode="after")
    def _identifiable(self) -> ContactCreate:
        if not (self.first_name or self.last_name or self.email or self.phone):
            raise ValueError("a contact needs at least one of first_name, last_name, email or phone")
        return self


class ContactUpdate(PatchSchema):
    non_nullable: ClassVar[frozenset[str]] = frozenset(
        {
            "lifecycle_stage",
            "source",
            "tags",
            "custom_fields",
            "email_opt_in",
            "additional_emails",
            "additional_phones",
        }
    )

    first_name: Text100 = None
    last_name: Text100 = None
    title: Text200 = None
    email: Email | None = None
    phone: Phone | None = None
    additional_emails: list[LabelledEmail] | None = Field(default=None, max_length=20)
    additional_phones: list[LabelledPhone] | None = Field(default=None, max_length=20)
    company_id: uuid.UUID | None = None
    address_line1: Text300 = None
    address_line2: Text300 = None
    city: Text100 = None
    region: Text100 = None
    postal_code: Text20 = None
    country: CountryCode | None = None
    source: ContactSource | None = None
    lifecycle_stage: LifecycleStage | None = None
    owner_id: uuid.UUID | None = None
    tags: Tags | None = None
    external_id: ExternalId = None
    custom_fields: dict[str, Any] | None = Field(
        default=None,
        description="Merged into the stored values; a key set to null is removed",
    )
    email_opt_in: bool | None = None
    email_opt_in_source: Text100 = Field(
        default=None, description="Recorded with a change of `email_opt_in`, and only sent with it"
    )

    model_config = ConfigDict(json_schema_extra={"examples": [{"title": "销售总监", "lifecycle_stage": "customer"}]})

    @model_validator(mode="after")
    def _consent_source_with_consent(self) -> ContactUpdate:
        # The source belongs to the consent given or withdrawn: alone it would change nothing.
        if "email_opt_in_source" in self.model_fields_set and "email_opt_in" not in self.model_fields_set:
            raise ValueError("email_opt_in_source is recorded with a change of email_opt_in: send both")
        return self


class LabelledEmailRead(BaseModel):
    email: str
    label: str | None = None


class LabelledPhoneRead(BaseModel):
    phone: str
    label: str | None = None


def full_name(first_name: str | None, last_name: str | None) -> str | None:
    """A person's name as it is read: Chinese, Japanese and Korean names family name first, without a space."""
    parts = [p for p in (first_name, last_name) if p]
    if not parts:
        return None
    if _CJK.search("".join(parts)):
        return "".join(p for p in (last_name, first_name) if p)
    return " ".join(parts)


class ContactRead(ReadSchema):
    id: uuid.UUID
    first_name: str | None
    last_name: str | None
    title: str | None
    email: str | None
    phone: str | None
    additional_emails: list[LabelledEmailRead]
    additional_phones: list[LabelledPhoneRead]
    company_id: uuid.UUID | None
    address_line1: str | None
    address_line2: str | None
    city: str | None
    region: str | None
    postal_code: str | None
    country: str | None
    source: ContactSource
    lifecycle_stage: LifecycleStage
    lead_score: int | None = Field(description="Points from the scoring rules (GET /contacts/{id}/score explains them)")
    lead_grade: str | None = Field(description="A–D by the organisation's lead_grade_thresholds")
    owner_id: uuid.UUID | None
    tags: list[str]
    external_id: str | None
    custom_fields: PublicCustomFields
    email_opt_in: bool
    email_opt_in_at: datetime | None
    email_opt_in_source: str | None
    created_at: datetime
    updated_at: datetime
    archived_at: datetime | None
    merged_into_id: uuid.UUID | None = Field(description="Set when this record was merged into that one")
    erased_at: datetime | None = Field(description="Set when the person's data was erased (irreversible)")
    version: int

    @computed_field  # type: ignore[prop-decorator]
    @property
    def full_name(self) -> str | None:
        """Chinese, Japanese and Korean names read family name first, without a space."""
        return full_name(self.first_name, self.last_name)


class ContactPage(Page[ContactRead]):
    pass


class LifecycleChangeRead(ReadSchema):
    from_stage: LifecycleStage | None
    to_stage: LifecycleStage
    reason: str = Field(description="manual, or the rule: score, first_order, repeat_order, loyal, inactivity")
    changed_at: datetime
    actor_type: str
    actor_id: uuid.UUID | None


class LifecycleChangePage(Page[LifecycleChangeRead]):
    pass
