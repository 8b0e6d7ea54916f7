"""Organisation schemas: OrganizationRead / OrganizationUpdate."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, ClassVar

from pydantic import Field, model_validator

from app.core.permissions import Visibility
from app.schemas.common import Currency, InputSchema, Money, PatchSchema, ReadSchema


class GradeThresholds(InputSchema):
    """The least lead score of each grade; below C is D."""

    A: int = Field(ge=-100000, le=100000)
    B: int = Field(ge=-100000, le=100000)
    C: int = Field(ge=-100000, le=100000)

    @model_validator(mode="after")
    def _descending(self) -> GradeThresholds:
        if not self.A > self.B > self.C:
            raise ValueError("A must be above B, and B above C")
        return self


class LifecycleRules(InputSchema):
    """When rules move contacts along the lifecycle; null turns a rule off."""

    mql_score: int | None = Field(default=None, description="A lead score that makes a lead marketing qualified")
    sql_score: int | None = Field(default=None, description="A lead score that makes a lead sales qualified")
    loyal_orders: int | None = Field(default=5, ge=2, description="Paid orders that make a customer loyal")
    loyal_spend: Money | None = Field(
        default=None, description="Paid totals (in the organisation's currency) that make a customer loyal"
    )
    churn_days: int | None = Field(
        default=180, ge=1, le=3650, description="Days without an order or activity that churn a customer"
    )

    @model_validator(mode="after")
    def _sql_above_mql(self) -> LifecycleRules:
        if self.mql_score is not None and self.sql_score is not None and self.sql_score <= self.mql_score:
            raise ValueError("sql_score must be above mql_score")
        return self


class OrganizationRead(ReadSchema):
    id: uuid.UUID
    name: str
    record_visibility: Visibility = Field(description="What sales and support users see: all, team or own records")
    merge_email_duplicates: bool = Field(
        description="A POST /contacts whose e-mail an existing contact has fills that contact in instead (200)"
    )
    currency: str = Field(description="ISO 4217 code deals and products use unless they name another")
    lead_grade_thresholds: dict[str, int] = Field(description="The least lead score of grades A, B and C")
    lifecycle_rules: dict[str, Any] = Field(description="When rules move contacts along the lifecycle")
    created_at: datetime
    updated_at: datetime
    version: int


class OrganizationUpdate(PatchSchema):
    non_nullable: ClassVar[frozenset[str]] = frozenset(
        {"name", "record_visibility", "merge_email_duplicates", "currency", "lead_grade_thresholds", "lifecycle_rules"}
    )

    name: str | None = Field(default=None, min_length=1, max_length=200)
    record_visibility: Visibility | None = None
    merge_email_duplicates: bool | None = None
    currency: Currency | None = None
    lead_grade_thresholds: GradeThresholds | None = Field(
        default=None, description="Changing them regrades every contact (in a job)"
    )
    lifecycle_rules: LifecycleRules | None = Field(default=None, description="Replaces the rules as a whole")
