"""Report schemas: FunnelRead, ForecastRead, RepPerformanceRead, VelocityRead.

Money is a decimal string, per currency (never added across currencies); ratios are 0–1 floats
rounded to 4 places; durations are days, rounded to 4 places.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Literal

from pydantic import Field

from app.core.enums import StageKind
from app.schemas.common import ReadSchema

Ratio = float | None


class FunnelStepRead(ReadSchema):
    stage_id: uuid.UUID = Field(description="The stage; for the won step, the first live won stage")
    name: str
    kind: StageKind = Field(description="`open`, or `won` for the last step (every live won stage)")
    position: int
    reached: int = Field(
        description="cohort: deals of the cohort that have entered this step or a later one; entered: deals "
        "that entered this step or a later one in the period"
    )
    conversion_from_previous: Ratio = Field(description="reached / the previous step's reached; null on the first")
    conversion_from_first: Ratio = Field(description="reached / the first step's reached")
    median_days: float | None = Field(
        description="Median finished stay in this stage: of the cohort's visits (within 5 %), or of the visits "
        "entered in the period (exact)"
    )
    average_days: float | None = Field(description="Average stay, as median_days")
    stays: int = Field(description="The finished stays median_days and average_days are computed over")


class FunnelRead(ReadSchema):
    pipeline_id: uuid.UUID
    basis: Literal["cohort", "entered"]
    since: datetime
    until: datetime
    owner_id: uuid.UUID | None
    steps: list[FunnelStepRead]


class ForecastTotalRead(ReadSchema):
    currency: str
    open_deals: int
    amount: Decimal = Field(description="Sum of the open deals' amounts")
    weighted_amount: Decimal = Field(description="Sum of amount × probability / 100, rounded to cents")
    won_deals: int = Field(description="Deals won (closed_at) in the month")
    won_amount: Decimal


class ForecastRowRead(ReadSchema):
    month: date = Field(description="The month's first day")
    owner_id: uuid.UUID | None = Field(description="With group_by=owner: the deals' owner (null: no owner)")
    open_deals: int
    won_deals: int
    totals: list[ForecastTotalRead] = Field(description="Per currency")


class ForecastRead(ReadSchema):
    pipeline_id: uuid.UUID | None = Field(description="null: every pipeline")
    start: date = Field(serialization_alias="from", description="The first month's first day")
    months: int
    group_by: Literal["month", "owner"]
    owner_id: uuid.UUID | None
    rows: list[ForecastRowRead] = Field(
        description="group_by=month: one row per month, in order; group_by=owner: one row per owner and month "
        "with deals, by owner then month"
    )


class AmountRead(ReadSchema):
    currency: str
    amount: Decimal
    deals: int


class RepPerformanceRowRead(ReadSchema):
    owner_id: uuid.UUID | None = Field(description="null: deals without an owner")
    owner_name: str | None
    won_deals: int
    lost_deals: int
    win_rate: Ratio = Field(description="won / (won + lost), closed in the period; null when none closed")
    average_cycle_days: float | None = Field(description="Average created → closed of the deals won in the period")
    won: list[AmountRead] = Field(description="Won in the period, per currency")
    open_pipeline: list[AmountRead] = Field(description="Open deals now, per currency")
    open_deals: int
    tasks_completed: int | None = Field(description="Tasks assigned to the owner and completed in the period")


class RepPerformanceRead(ReadSchema):
    since: datetime
    until: datetime
    reps: list[RepPerformanceRowRead]


class VelocityComponentsRead(ReadSchema):
    currency: str | None = Field(description="null on `overall`")
    open_deals: int = Field(description="Open deals in the pipeline now")
    won_deals: int
    lost_deals: int
    win_rate: Ratio = Field(description="won / (won + lost), closed in the period")
    average_cycle_days: float | None = Field(description="Average created → closed of the deals won in the period")
    average_won_amount: Decimal | None = Field(description="Of the deals won in the period (null on `overall`)")
    velocity_per_day: Decimal | None = Field(
        description="open_deals × average_won_amount × win_rate / average_cycle_days (null on `overall`)"
    )


class VelocityRead(ReadSchema):
    pipeline_id: uuid.UUID
    since: datetime
    until: datetime
    overall: VelocityComponentsRead
    currencies: list[VelocityComponentsRead]
