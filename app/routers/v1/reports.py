"""/api/v1/reports: the sales reports (funnel, forecast, rep performance, velocity)."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Annotated

from fastapi import APIRouter, Query

from app.core.permissions import Scope
from app.core.principal import Principal
from app.routers.deps import API_PREFIX, AUTHENTICATED, ApiRoute, SessionDep, problems, require
from app.schemas.report import ForecastRead, FunnelRead, RepPerformanceRead, VelocityRead
from app.services import reports
from app.services.reports import ForecastGrouping, FunnelBasis

router = APIRouter(prefix=API_PREFIX + "/reports", tags=["reports"], route_class=ApiRoute)
Reader = Annotated[Principal, require(Scope.reports_read)]

_MOMENT = "A date (midnight UTC) or a time (UTC when it has no offset)"
Since = Annotated[
    datetime | None,
    Query(description=f"Start of the period, included. {_MOMENT}; 90 days before until by default"),
]
Until = Annotated[datetime | None, Query(description=f"End of the period, excluded. {_MOMENT}; now by default")]
PipelineQuery = Annotated[uuid.UUID | None, Query(description="The organisation's default pipeline when left out")]
OwnerQuery = Annotated[uuid.UUID | None, Query(description="Only the deals this user owns")]

_VISIBLE = (
    " Counts the deals the caller may see (a sales rep under `own` or `team` visibility: their own or "
    "their team's) and leaves archived deals out; periods are `[since, until)` in UTC."
)


@router.get(
    "/funnel",
    operation_id="reports_funnel",
    response_model=FunnelRead,
    responses=problems(*AUTHENTICATED, 404),
    summary="Funnel conversion between a pipeline's stages: a cohort's, or the stage entries of a period",
    description="One step per live open stage, in position order, then one for won (every live won stage). "
    "Lost and archived stages are no step. `conversion_from_previous` = reached / the previous step's "
    "reached, `conversion_from_first` = reached / the first step's.\n\n"
    "`basis=cohort` (the default): the cohort is the deals whose *first* stage visit in the pipeline falls in "
    "the period, which is widened to whole UTC days (`since` down to its midnight, `until` up to the next "
    "midnight unless it is one; the reply gives the bounds used). A deal **reached** step k when it has ever "
    "entered, up to now, a live open stage at step k or later, or a won stage. `median_days` and "
    "`average_days`: the cohort's finished visits to that stage (none for won); the average is exact, the "
    "median within 5 % (or one second). Read from facts kept as history is written: fast at any size.\n\n"
    "`basis=entered`: a deal **reached** step k when, in `[since, until)`, it *entered* (a stage visit's "
    "`entered_at`) a stage at step k or later: a deal that entered 方案制定 reached 潜在客户 and 需求分析 too. "
    "Stays: the visits entered in the period that have left the stage since, median and average exact. Read "
    "from the raw stage history: seconds on a million deals." + _VISIBLE,
)
async def funnel_report(
    session: SessionDep,
    principal: Reader,
    pipeline_id: PipelineQuery = None,
    since: Since = None,
    until: Until = None,
    owner_id: OwnerQuery = None,
    basis: Annotated[
        FunnelBasis,
        Query(description="`cohort`: deals by their first entry into the pipeline; `entered`: stage entries"),
    ] = FunnelBasis.cohort,
) -> FunnelRead:
    found = await reports.funnel(
        session, principal, pipeline_id=pipeline_id, since=since, until=until, owner_id=owner_id, basis=basis
    )
    return FunnelRead.model_validate(found)


@router.get(
    "/forecast",
    operation_id="reports_forecast",
    response_model=ForecastRead,
    response_model_by_alias=True,
    responses=problems(*AUTHENTICATED, 404),
    summary="Weighted forecast of open deals by expected close month, with the amounts won each month",
    description="Open deals by the calendar month of their `expected_close_date` (deals without one are in no "
    "month), per currency: how many, the sum of their amounts and the weighted sum (amount × probability / "
    "100). Beside them, the deals won in each month (by `closed_at`, UTC) and their amounts. Amounts are "
    "never added across currencies. Every pipeline unless `pipeline_id` is given." + _VISIBLE,
)
async def forecast_report(
    session: SessionDep,
    principal: Reader,
    pipeline_id: Annotated[uuid.UUID | None, Query(description="Every pipeline when left out")] = None,
    from_: Annotated[
        date | None, Query(alias="from", description="A day of the first month; the current month by default")
    ] = None,
    months: Annotated[int, Query(ge=1, le=24, description="How many months, 1–24")] = 12,
    owner_id: OwnerQuery = None,
    group_by: Annotated[
        ForecastGrouping, Query(description="`month`: one row per month; `owner`: per owner and month")
    ] = ForecastGrouping.month,
) -> ForecastRead:
    found = await reports.forecast(
        session, principal, pipeline_id=pipeline_id, start=from_, months=months, group_by=group_by, owner_id=owner_id
    )
    return ForecastRead.model_validate(found)


@router.get(
    "/rep-performance",
    operation_id="reports_rep_performance",
    response_model=RepPerformanceRead,
    responses=problems(*AUTHENTICATED),
    summary="Per owner: won amounts, won and lost deals, win rate, sales cycle, open pipeline, tasks completed",
    description="For each owner of deals: the deals won and lost in the period (by `closed_at`), the won "
    "amounts per currency, win rate = won / (won + lost), the average sales cycle of the won ones "
    "(`created_at` → `closed_at`, days), the open deals now and their amounts per currency, and the tasks "
    "assigned to the owner and completed in the period." + _VISIBLE,
)
async def rep_performance_report(
    session: SessionDep, principal: Reader, since: Since = None, until: Until = None
) -> RepPerformanceRead:
    return RepPerformanceRead.model_validate(
        await reports.rep_performance(session, principal, since=since, until=until)
    )


@router.get(
    "/velocity",
    operation_id="reports_velocity",
    response_model=VelocityRead,
    responses=problems(*AUTHENTICATED, 404),
    summary="Pipeline velocity: open deals × average won amount × win rate / average cycle days",
    description="The money a pipeline brings in per day, with its four components: the open deals in it now, "
    "and of its deals closed in the period the average won amount, the win rate won / (won + lost) and the "
    "average sales cycle of the won ones (`created_at` → `closed_at`, days). Per currency; `overall` gives "
    "the counts, win rate and cycle across currencies." + _VISIBLE,
)
async def velocity_report(
    session: SessionDep,
    principal: Reader,
    pipeline_id: PipelineQuery = None,
    since: Since = None,
    until: Until = None,
) -> VelocityRead:
    found = await reports.velocity(session, principal, pipeline_id=pipeline_id, since=since, until=until)
    return VelocityRead.model_validate(found)
