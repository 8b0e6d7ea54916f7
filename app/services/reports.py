"""Sales reports: the funnel, the forecast, rep performance and pipeline velocity.

Every report reads the deals the caller may see (`DEALS.repository(...).scoped()`: the
organisation, and for a restricted role its own or its team's deals), leaves archived deals out,
and is computed in PostgreSQL with GROUP BY and window functions over covering indexes
(migration 0014); Python only shapes the few aggregate rows that come back. Money stays Decimal
and is never added across currencies. Periods are half-open, `[since, until)`, in UTC; months are
calendar months in UTC.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum
from typing import Any, Final

from sqlalchemy import (
    ColumnElement,
    Date,
    Float,
    Integer,
    Numeric,
    Select,
    String,
    Uuid,
    case,
    cast,
    func,
    literal,
    literal_column,
    null,
    select,
    text,
    union_all,
)
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.enums import StageKind
from app.core.errors import FieldError, ValidationFailed
from app.core.permissions import Visibility
from app.core.principal import Principal
from app.core.repository import TenantRepository
from app.models.deal import Deal, DealStageVisit
from app.models.organization import User
from app.models.pipeline import Pipeline, PipelineStage
from app.services import funnel_cohorts, pipelines
from app.services.deals import DEALS
from app.services.funnel_cohorts import StayFigures

CENT: Final = Decimal("0.01")
DAY_SECONDS: Final = 86_400
DEFAULT_PERIOD: Final = timedelta(days=90)
RATIO_DIGITS: Final = 4
# Closed deals are matched on these literals, not bound parameters, so that the planner can use
# the partial covering indexes (`status = 'open'`) with any plan, generic ones included.
_OPEN: Final[ColumnElement[str]] = literal_column("'open'")
_WON: Final[ColumnElement[str]] = literal_column("'won'")
_LOST: Final[ColumnElement[str]] = literal_column("'lost'")


class ForecastGrouping(StrEnum):
    month = "month"
    owner = "owner"


class FunnelBasis(StrEnum):
    """Which deals a funnel counts: a cohort (first entry into the pipeline in the period, read
    from the facts kept at write time) or the stage entries in the period (raw history)."""

    cohort = "cohort"
    entered = "entered"


# --------------------------------------------------------------------------- shared pieces


Moment = datetime | date


def _utc(moment: Moment) -> datetime:
    """A time in UTC: a date is its midnight in UTC, a time without an offset is read as UTC."""
    if not isinstance(moment, datetime):
        return datetime.combine(moment, datetime.min.time(), UTC)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def period(since: Moment | None, until: Moment | None) -> tuple[datetime, datetime]:
    """`[since, until)` in UTC: until defaults to now, since to 90 days before until."""
    end = _utc(until) if until is not None else datetime.now(UTC)
    start = _utc(since) if since is not None else end - DEFAULT_PERIOD
    if start >= end:
        raise ValidationFailed(FieldError(("query", "since"), "must be before until"))
    return start, end


def month_start(day: date) -> date:
    return day.replace(day=1)


def add_months(first: date, months: int) -> date:
    index = first.year * 12 + first.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def _ratio(part: int, whole: int) -> float | None:
    return round(part / whole, RATIO_DIGITS) if whole else None


def _days(seconds: float | Decimal | None) -> float | None:
    return None if seconds is None else round(float(seconds) / DAY_SECONDS, RATIO_DIGITS)


def _money(value: Decimal | int | None) -> Decimal:
    return Decimal(value or 0).quantize(CENT, rounding=ROUND_HALF_UP)


def _restricted(principal: Principal) -> bool:
    return principal.visibility is not Visibility.all


def _deals(session: AsyncSession, principal: Principal, *, owner_id: uuid.UUID | None) -> Select[Any]:
    """The active deals the caller may see (optionally one owner's), as a statement to narrow."""
    statement = DEALS.repository(session, principal).scoped().where(Deal.archived_at.is_(None))
    return statement if owner_id is None else statement.where(Deal.owner_id == owner_id)


# Settings for a large report's statements. A funnel from raw history groups up to a million
# deals and sorts up to a million stays: at the default 4 MB both spill to disk. JIT compiling
# costs more than it saves on these short scans; and a custom plan for each call (not a prepared
# statement's generic plan) keeps the real period and owner in the estimates.
_REPORT_SETTINGS: Final = {"work_mem": "128MB", "jit": "off", "plan_cache_mode": "force_custom_plan"}
_APPLY_REPORT_SETTINGS: Final = text(
    "SELECT " + ", ".join(f"set_config('{name}', '{value}', false)" for name, value in _REPORT_SETTINGS.items())
)
# What `RESET` would restore, as one statement (a prepared statement holds one command).
_RESET_REPORT_SETTINGS: Final = text(
    "SELECT set_config(name, reset_val, false) FROM pg_settings WHERE name IN ("
    + ", ".join(f"'{name}'" for name in _REPORT_SETTINGS)
    + ")"
)


@asynccontextmanager
async def _large_report(session: AsyncSession) -> AsyncIterator[None]:
    """The report's statements with `_REPORT_SETTINGS`. Reads run in autocommit (no transaction,
    so no `SET LOCAL`): the settings are set for the session's connection, in one round trip, and
    reset before it goes back to the pool."""
    await session.execute(_APPLY_REPORT_SETTINGS)
    try:
        yield
    finally:
        await session.execute(_RESET_REPORT_SETTINGS)


def _seconds(later: Any, earlier: Any) -> ColumnElement[Any]:
    return func.extract("epoch", later - earlier)


def _utc_month(moment: Any) -> ColumnElement[date]:
    """The first day of a timestamptz's UTC month, whatever the session's time zone."""
    return cast(func.date_trunc("month", func.timezone("UTC", moment)), Date)


# --------------------------------------------------------------------------- funnel


@dataclass(frozen=True, slots=True)
class FunnelStep:
    stage_id: uuid.UUID
    name: str
    kind: StageKind
    position: int
    reached: int
    conversion_from_previous: float | None
    conversion_from_first: float | None
    median_days: float | None
    average_days: float | None
    stays: int


@dataclass(frozen=True, slots=True)
class Funnel:
    pipeline_id: uuid.UUID
    basis: FunnelBasis
    since: datetime
    until: datetime
    owner_id: uuid.UUID | None
    steps: list[FunnelStep]


async def _pipeline(session: AsyncSession, principal: Principal, pipeline_id: uuid.UUID | None) -> Pipeline:
    if pipeline_id is None:
        return await pipelines.default_pipeline(session, principal)
    return await pipelines.get_pipeline(session, principal, pipeline_id)


@dataclass(frozen=True, slots=True)
class _Steps:
    """A pipeline's funnel steps now: live open stages in position order (steps 0, 1, …), then
    every live won stage as the one last step."""

    opens: list[PipelineStage]
    wons: list[PipelineStage]

    @classmethod
    def of(cls, pipeline: Pipeline) -> _Steps:
        return cls(
            opens=[stage for stage in pipeline.stages if stage.kind is StageKind.open],
            wons=[stage for stage in pipeline.stages if stage.kind is StageKind.won],
        )

    @property
    def numbered(self) -> dict[uuid.UUID, int]:
        won_step = len(self.opens)
        return {stage.id: step for step, stage in enumerate(self.opens)} | {stage.id: won_step for stage in self.wons}

    def build(self, reached: list[int], stays: dict[uuid.UUID, StayFigures]) -> list[FunnelStep]:
        """The reply's steps from the deals that reached each step and the open stages' stays."""
        result: list[FunnelStep] = []
        first = reached[0] if reached else 0
        for step, stage in enumerate([*self.opens, *self.wons[:1]]):
            previous = result[-1].reached if result else None
            figures = stays.get(stage.id) if stage.kind is StageKind.open else None
            result.append(
                FunnelStep(
                    stage_id=stage.id,
                    name=stage.name,
                    kind=stage.kind,
                    position=stage.position,
                    reached=reached[step],
                    conversion_from_previous=None if previous is None else _ratio(reached[step], previous),
                    conversion_from_first=_ratio(reached[step], first),
                    median_days=_days(figures.median_seconds) if figures else None,
                    average_days=_days(figures.average_seconds) if figures else None,
                    stays=figures.stays if figures else 0,
                )
            )
        return result


async def funnel(
    session: AsyncSession,
    principal: Principal,
    *,
    pipeline_id: uuid.UUID | None,
    since: Moment | None,
    until: Moment | None,
    owner_id: uuid.UUID | None = None,
    basis: FunnelBasis = FunnelBasis.cohort,
) -> Funnel:
    """Conversion through the pipeline's live open stages, in order, and then won.

    Steps are numbered 0, 1, … over the live open stages in position order; every live won stage
    is the last step. Lost and archived stages are no step; archived deals are left out.

    `cohort` (the default): the deals whose first stage visit in the pipeline falls in the period,
    which is widened to whole UTC days; a deal *reached* step k when it has ever entered (up to
    now) a stage at step ≥ k. Stays: the cohort's finished visits to each open stage, the average
    exact and the median within 5 % (see `funnel_cohorts`). Read from the facts the database keeps.
    `entered`: see `_entered_funnel`, which reads the raw stage history (slow on large data).
    """
    start, end = period(since, until)
    pipeline = await _pipeline(session, principal, pipeline_id)
    steps = _Steps.of(pipeline)
    if basis is FunnelBasis.entered:
        reached, stays = await _entered_funnel(session, principal, pipeline, steps, start, end, owner_id)
    else:
        start, end = funnel_cohorts.whole_days(start, end)
        async with _large_report(session):
            facts = await funnel_cohorts.cohort_facts(
                session,
                principal,
                pipeline_id=pipeline.id,
                first_day=start.date(),
                after_day=end.date(),
                stage_ids=[stage.id for stage in steps.opens],
                owner_id=owner_id,
            )
        numbered = steps.numbered
        reached = [0] * (len(steps.opens) + 1)
        for stage_set, deals in facts.deals_by_stage_set:
            # The furthest step the set reaches in the stages' order now (none: only lost or archived).
            furthest = max((numbered[stage] for stage in stage_set if stage in numbered), default=None)
            for step in range(0 if furthest is None else furthest + 1):
                reached[step] += deals
        stays = facts.stays
    return Funnel(
        pipeline_id=pipeline.id,
        basis=basis,
        since=start,
        until=end,
        owner_id=owner_id,
        steps=steps.build(reached, stays),
    )


async def _entered_funnel(
    session: AsyncSession,
    principal: Principal,
    pipeline: Pipeline,
    steps: _Steps,
    start: datetime,
    end: datetime,
    owner_id: uuid.UUID | None,
) -> tuple[list[int], dict[uuid.UUID, StayFigures]]:
    """Basis `entered`, from the raw stage history: a deal *reached* step k in the period when one
    of its stage visits that entered in `[since, until)` is to a stage of step ≥ k (so a deal that
    entered 方案制定 reached 潜在客户 and 需求分析 too, even if it skipped them or entered them
    before the period). `median_days` / `average_days`: the time spent in that very stage by the
    visits that entered it in the period and have left it since (stays still going on are not
    counted), exact; none for the won step. Returns reached per step and the stays per stage."""
    won_step = len(steps.opens)
    numbered = steps.numbered
    visit = DealStageVisit
    # A visit's step from the stages' current order: a CASE over the pipeline's few stage ids, so
    # the visits need no join and a reorder is seen at once (nothing stored depends on positions).
    step_of = case(numbered, value=visit.stage_id) if numbered else null().cast(Integer)
    archived = (
        select(Deal.id)
        .where(Deal.organization_id == principal.organization_id, Deal.archived_at.is_not(None))
        .scalar_subquery()
    )
    conditions = [
        visit.organization_id == principal.organization_id,
        visit.pipeline_id == pipeline.id,
        visit.entered_at >= start,
        visit.entered_at < end,
        visit.stage_id.in_(list(numbered)),
        visit.deal_id.not_in(archived),
    ]
    visits_of = select(visit.deal_id, visit.stage_id, visit.entered_at, visit.exited_at, step_of.label("step"))
    # The whole organisation's deals need no join; a restricted caller's or one owner's do, and
    # start from those deals: their ids come from the owner index alone (archived ones are left
    # out above, from the tiny partial index, not by reading each deal), then their visits from
    # the covering `ix_deal_stage_history_deal` (migration 0019), a few index probes a deal. As a
    # semi-join (`deal_id IN (…)`) the planner read every visit of the period instead.
    if _restricted(principal) or owner_id is not None:
        mine = DEALS.repository(session, principal).scoped().with_only_columns(Deal.id)
        if owner_id is not None:
            mine = mine.where(Deal.owner_id == owner_id)
        theirs = mine.subquery("theirs")
        visits_of = visits_of.select_from(theirs).join(visit, visit.deal_id == theirs.c.id)
    visits = visits_of.where(*conditions).subquery("visits")
    # Each deal's furthest step in the period; deals per furthest step; reached = deals whose
    # furthest step is this one or later (a running sum from the last step down). Two statements
    # rather than one over a shared CTE: each is planned with real estimates and may run parallel.
    furthest = select(func.max(visits.c.step).label("step")).group_by(visits.c.deal_id).subquery("furthest")
    per_step = select(furthest.c.step, func.count().label("deals")).group_by(furthest.c.step).subquery("per_step")
    reached = select(per_step.c.step, func.sum(per_step.c.deals).over(order_by=per_step.c.step.desc()).cast(Integer))
    stay = _seconds(visits.c.exited_at, visits.c.entered_at)
    stays = (
        select(
            visits.c.stage_id,
            func.count().cast(Integer).label("n"),
            func.percentile_cont(0.5).within_group(stay).cast(Float).label("median_s"),
            func.avg(stay).cast(Float).label("avg_s"),
        )
        .where(visits.c.exited_at.is_not(None), visits.c.step < won_step)
        .group_by(visits.c.stage_id)
    )
    async with _large_report(session):
        running: dict[int, int] = dict((await session.execute(reached)).all())
        durations = {
            row.stage_id: StayFigures(stays=row.n, median_seconds=row.median_s, average_seconds=row.avg_s)
            for row in await session.execute(stays)
        }

    def reached_at(step: int) -> int:
        later = [s for s in running if s >= step]
        return running[min(later)] if later else 0

    return [reached_at(step) for step in range(won_step + 1)], durations


# --------------------------------------------------------------------------- forecast


@dataclass(frozen=True, slots=True)
class ForecastTotal:
    currency: str
    open_deals: int = 0
    amount: Decimal = Decimal("0.00")
    weighted_amount: Decimal = Decimal("0.00")
    won_deals: int = 0
    won_amount: Decimal = Decimal("0.00")


@dataclass(frozen=True, slots=True)
class ForecastRow:
    month: date
    owner_id: uuid.UUID | None
    open_deals: int
    won_deals: int
    totals: list[ForecastTotal]


@dataclass(frozen=True, slots=True)
class Forecast:
    pipeline_id: uuid.UUID | None
    start: date
    months: int
    group_by: ForecastGrouping
    owner_id: uuid.UUID | None
    rows: list[ForecastRow]


async def forecast(
    session: AsyncSession,
    principal: Principal,
    *,
    pipeline_id: uuid.UUID | None,
    start: date | None,
    months: int,
    group_by: ForecastGrouping,
    owner_id: uuid.UUID | None = None,
) -> Forecast:
    """Open deals by the month they are expected to close in (and by owner): how many, their
    amount and weighted amount (amount × probability / 100) per currency; beside them the deals
    won in each month (by `closed_at`). Open deals without an expected close date are in no month.
    `months` calendar months from `start`'s month; every pipeline unless one is named."""
    if not 1 <= months <= 24:
        raise ValidationFailed(FieldError(("query", "months"), "must be between 1 and 24"))
    first = month_start(start or datetime.now(UTC).date())
    after = add_months(first, months)
    pipeline = None if pipeline_id is None else await pipelines.get_pipeline(session, principal, pipeline_id)
    by_owner = group_by is ForecastGrouping.owner

    def narrowed(statement: Select[Any]) -> Select[Any]:
        return statement if pipeline is None else statement.where(Deal.pipeline_id == pipeline.id)

    scoped = narrowed(_deals(session, principal, owner_id=owner_id))
    open_month = cast(func.date_trunc("month", Deal.expected_close_date), Date)
    owner = Deal.owner_id if by_owner else null().cast(Uuid)
    open_rows = (
        scoped.with_only_columns(
            literal("open", String).label("part"),
            open_month.label("month"),
            owner.label("owner_id"),
            Deal.currency,
            func.count().label("deals"),
            func.coalesce(func.sum(Deal.amount), 0).label("amount"),
            func.coalesce(func.sum(Deal.amount * Deal.probability), 0).label("weighted"),
        )
        .where(Deal.status == _OPEN, Deal.expected_close_date >= first, Deal.expected_close_date < after)
        .group_by(open_month, owner, Deal.currency)
    )
    won_month = _utc_month(Deal.closed_at)
    won_rows = (
        scoped.with_only_columns(
            literal("won", String),
            won_month,
            owner,
            Deal.currency,
            func.count(),
            func.coalesce(func.sum(Deal.amount), 0),
            literal(0, Numeric),
        )
        .where(
            Deal.closed_at.is_not(None),
            Deal.status == _WON,
            Deal.closed_at >= _utc(first),
            Deal.closed_at < _utc(after),
        )
        .group_by(won_month, owner, Deal.currency)
    )
    found = (await session.execute(union_all(open_rows, won_rows))).all()

    cells: dict[tuple[date, uuid.UUID | None], dict[str, ForecastTotal]] = defaultdict(dict)
    for part, month, row_owner, currency, deals, amount, weighted in found:
        total = cells[(month, row_owner)].get(currency, ForecastTotal(currency))
        if part == "open":
            total = ForecastTotal(
                currency,
                open_deals=deals,
                amount=_money(amount),
                weighted_amount=_money(Decimal(weighted) / 100),
                won_deals=total.won_deals,
                won_amount=total.won_amount,
            )
        else:
            total = ForecastTotal(
                currency,
                open_deals=total.open_deals,
                amount=total.amount,
                weighted_amount=total.weighted_amount,
                won_deals=deals,
                won_amount=_money(amount),
            )
        cells[(month, row_owner)][currency] = total
    if by_owner:
        keys = sorted(cells, key=lambda key: (str(key[1] or ""), key[0]))
    else:
        keys = [(add_months(first, n), None) for n in range(months)]
    rows = [
        ForecastRow(
            month=month,
            owner_id=row_owner,
            open_deals=sum(t.open_deals for t in cells.get((month, row_owner), {}).values()),
            won_deals=sum(t.won_deals for t in cells.get((month, row_owner), {}).values()),
            totals=sorted(cells.get((month, row_owner), {}).values(), key=lambda t: t.currency),
        )
        for month, row_owner in keys
    ]
    return Forecast(
        pipeline_id=pipeline.id if pipeline else None,
        start=first,
        months=months,
        group_by=group_by,
        owner_id=owner_id,
        rows=rows,
    )


# --------------------------------------------------------------------------- closed deals, shared


@dataclass(slots=True)
class _Closed:
    """Deals closed in a period, per currency: counts, won amounts and won cycle seconds."""

    won: int = 0
    lost: int = 0
    won_amount: Decimal = Decimal(0)
    won_with_amount: int = 0
    cycle_seconds: float = 0.0


def _closed_rows(scoped: Select[Any], start: datetime, end: datetime, *, by_owner: bool) -> Select[Any]:
    """Per (owner,) status and currency: deals closed won or lost in `[start, end)`, the won
    amounts, how many of those have an amount, and the summed sales cycle (created → closed)."""
    owner = Deal.owner_id if by_owner else null().cast(Uuid)
    return (
        scoped.with_only_columns(
            owner.label("owner_id"),
            Deal.status,
            Deal.currency,
            func.count().label("deals"),
            func.coalesce(func.sum(Deal.amount), 0).label("amount"),
            func.count(Deal.amount).label("with_amount"),
            func.coalesce(func.sum(_seconds(Deal.closed_at, Deal.created_at)), 0).label("cycle_s"),
        )
        .where(Deal.closed_at.is_not(None), Deal.closed_at >= start, Deal.closed_at < end)
        .where(Deal.status.in_([_WON, _LOST]))
        .group_by(owner, Deal.status, Deal.currency)
    )


def _open_rows(scoped: Select[Any], *, by_owner: bool) -> Select[Any]:
    """Per (owner and) currency: the open deals now and their amounts."""
    owner = Deal.owner_id if by_owner else null().cast(Uuid)
    return (
        scoped.with_only_columns(
            owner.label("owner_id"),
            Deal.currency,
            func.count().label("deals"),
            func.coalesce(func.sum(Deal.amount), 0).label("amount"),
        )
        .where(Deal.status == _OPEN)
        .group_by(owner, Deal.currency)
    )


def _add_closed(into: _Closed, status: str, deals: int, amount: Any, with_amount: int, cycle_s: Any) -> None:
    if status == StageKind.won:
        into.won += deals
        into.won_amount += Decimal(amount)
        into.won_with_amount += with_amount
        into.cycle_seconds += float(cycle_s)
    else:
        into.lost += deals


# --------------------------------------------------------------------------- rep performance


@dataclass(frozen=True, slots=True)
class Amount:
    currency: str
    amount: Decimal
    deals: int


@dataclass(frozen=True, slots=True)
class RepPerformance:
    owner_id: uuid.UUID | None
    owner_name: str | None
    won_deals: int
    lost_deals: int
    win_rate: float | None
    average_cycle_days: float | None
    won: list[Amount]
    open_pipeline: list[Amount]
    open_deals: int
    tasks_completed: int | None


@dataclass(frozen=True, slots=True)
class RepPerformanceReport:
    since: datetime
    until: datetime
    reps: list[RepPerformance] = field(default_factory=list)


def _task_model() -> Any | None:
    """The tasks table's model, where this build has one (activity counts come from it)."""
    try:
        from app.models.task import Task
    except ImportError:  # pragma: no cover - a build without tasks
        return None
    return Task


async def _tasks_completed(
    session: AsyncSession, principal: Principal, start: datetime, end: datetime
) -> dict[uuid.UUID | None, int] | None:
    task = _task_model()
    if task is None:
        return None
    statement = (
        TenantRepository(task, session, principal, label="task")
        .scoped()
        .with_only_columns(task.assignee_id, func.count())
        .where(task.status == literal_column("'completed'"), task.completed_at >= start, task.completed_at < end)
        .group_by(task.assignee_id)
    )
    counts: dict[uuid.UUID | None, int] = dict((await session.execute(statement)).all())
    return counts


async def rep_performance(
    session: AsyncSession, principal: Principal, *, since: Moment | None, until: Moment | None
) -> RepPerformanceReport:
    """Per owner of deals the caller may see: deals won and lost in `[since, until)` (by
    `closed_at`), won amounts per currency, win rate won / (won + lost), the average sales cycle
    of the won ones (created → closed, in days), the open pipeline now per currency, and the tasks
    the owner completed in the period. Deals without an owner are one row with `owner_id` null."""
    start, end = period(since, until)
    scoped = _deals(session, principal, owner_id=None)
    closed: dict[uuid.UUID | None, _Closed] = defaultdict(_Closed)
    won: dict[uuid.UUID | None, list[Amount]] = defaultdict(list)
    for owner, status, currency, deals, amount, with_amount, cycle_s in await session.execute(
        _closed_rows(scoped, start, end, by_owner=True).order_by(Deal.currency)
    ):
        _add_closed(closed[owner], status, deals, amount, with_amount, cycle_s)
        if status == StageKind.won:
            won[owner].append(Amount(currency, _money(amount), deals))
    pipeline: dict[uuid.UUID | None, list[Amount]] = defaultdict(list)
    for owner, currency, deals, amount in await session.execute(
        _open_rows(scoped, by_owner=True).order_by(Deal.currency)
    ):
        pipeline[owner].append(Amount(currency, _money(amount), deals))
    tasks = await _tasks_completed(session, principal, start, end)
    owners = set(closed) | set(pipeline) | set(tasks or {})
    named = [owner for owner in owners if owner is not None]
    names = dict(
        (
            await session.execute(
                select(User.id, User.full_name).where(
                    User.organization_id == principal.organization_id, User.id.in_(named)
                )
            )
        ).all()
    )
    reps = []
    for owner in owners:
        record = closed.get(owner, _Closed())
        reps.append(
            RepPerformance(
                owner_id=owner,
                owner_name=names.get(owner) if owner else None,
                won_deals=record.won,
                lost_deals=record.lost,
                win_rate=_ratio(record.won, record.won + record.lost),
                average_cycle_days=_days(record.cycle_seconds / record.won) if record.won else None,
                won=won.get(owner, []),
                open_pipeline=pipeline.get(owner, []),
                open_deals=sum(amount.deals for amount in pipeline.get(owner, [])),
                tasks_completed=None if tasks is None else tasks.get(owner, 0),
            )
        )
    reps.sort(key=lambda rep: (-rep.won_deals, rep.owner_name is None, rep.owner_name or "", str(rep.owner_id)))
    return RepPerformanceReport(since=start, until=end, reps=reps)


# --------------------------------------------------------------------------- velocity


@dataclass(frozen=True, slots=True)
class VelocityComponents:
    currency: str | None
    open_deals: int
    won_deals: int
    lost_deals: int
    win_rate: float | None
    average_cycle_days: float | None
    average_won_amount: Decimal | None
    velocity_per_day: Decimal | None


@dataclass(frozen=True, slots=True)
class Velocity:
    pipeline_id: uuid.UUID
    since: datetime
    until: datetime
    overall: VelocityComponents
    currencies: list[VelocityComponents]


def _velocity(currency: str | None, open_deals: int, record: _Closed, *, with_money: bool) -> VelocityComponents:
    decided = record.won + record.lost
    average_won = (
        (record.won_amount / record.won_with_amount).quantize(CENT, rounding=ROUND_HALF_UP)
        if with_money and record.won_with_amount
        else None
    )
    cycle_days = Decimal(record.cycle_seconds) / record.won / DAY_SECONDS if record.won else None
    velocity = None
    if average_won is not None and cycle_days and decided:
        exact = Decimal(open_deals) * (record.won_amount / record.won_with_amount) * record.won / decided / cycle_days
        velocity = exact.quantize(CENT, rounding=ROUND_HALF_UP)
    return VelocityComponents(
        currency=currency,
        open_deals=open_deals,
        won_deals=record.won,
        lost_deals=record.lost,
        win_rate=_ratio(record.won, decided),
        average_cycle_days=None if cycle_days is None else round(float(cycle_days), RATIO_DIGITS),
        average_won_amount=average_won,
        velocity_per_day=velocity,
    )


async def velocity(
    session: AsyncSession,
    principal: Principal,
    *,
    pipeline_id: uuid.UUID | None,
    since: Moment | None,
    until: Moment | None,
) -> Velocity:
    """Pipeline velocity = open deals × average won amount × win rate / average cycle days: the
    money the pipeline is expected to bring in per day. Open deals: in the pipeline now; won,
    lost, amounts and cycles: deals of the pipeline closed in `[since, until)`. Per currency (the
    amounts are never added across currencies); `overall` gives the currency-free components."""
    start, end = period(since, until)
    pipeline = await _pipeline(session, principal, pipeline_id)
    scoped = _deals(session, principal, owner_id=None).where(Deal.pipeline_id == pipeline.id)
    per_currency: dict[str, _Closed] = defaultdict(_Closed)
    overall = _Closed()
    for _, status, currency, deals, amount, with_amount, cycle_s in await session.execute(
        _closed_rows(scoped, start, end, by_owner=False)
    ):
        _add_closed(per_currency[currency], status, deals, amount, with_amount, cycle_s)
        _add_closed(overall, status, deals, 0, 0, cycle_s)
    open_deals = {
        currency: deals for _, currency, deals, _ in await session.execute(_open_rows(scoped, by_owner=False))
    }
    currencies = sorted(set(per_currency) | set(open_deals))
    return Velocity(
        pipeline_id=pipeline.id,
        since=start,
        until=end,
        overall=_velocity(None, sum(open_deals.values()), overall, with_money=False),
        currencies=[
            _velocity(currency, open_deals.get(currency, 0), per_currency.get(currency, _Closed()), with_money=True)
            for currency in currencies
        ],
    )
