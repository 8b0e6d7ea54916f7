"""The cohort funnel's figures, read from the facts the database keeps (migration 0021).

A cohort is the deals whose first stage visit in a pipeline falls on a day of the period. The
database keeps, per cohort day and owner, how many active deals entered each *set* of stages, and
histograms of their finished stays per stage, applied as each writing transaction commits (so a
read sees committed writes only); nothing stored depends on the stages' order, so the report maps
sets to steps with the order of the moment. Reading a year of facts is a few thousand
rows where the stage history is millions.

Stay lengths are counted in log-spaced buckets: bucket 0 holds stays under a second, bucket b ≥ 1
stays of [STAY_BUCKET_RATIO^(b-1), STAY_BUCKET_RATIO^b) seconds (`rapport_funnel_stay_bucket` in
the migration computes the same). A median is interpolated linearly inside its bucket: every stay
is placed evenly within its own bucket, so each lies within one bucket's width of its true length,
and the median (one stay, or the mean of the two middle ones) is within STAY_BUCKET_RATIO − 1 (5 %)
of the exact median, or within one second below a second. Averages are exact (summed microseconds).
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Final

from sqlalchemy import ColumnElement, false, func, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.errors import FieldError, ValidationFailed
from app.core.principal import Principal
from app.core.repository import visible_owner_clause
from app.models.funnel import FunnelCohort, FunnelStay

STAY_BUCKET_RATIO: Final = 1.05
MICROSECONDS: Final = 1_000_000


@dataclass(frozen=True, slots=True)
class StayFigures:
    stays: int
    median_seconds: float | None
    average_seconds: float | None


@dataclass(frozen=True, slots=True)
class CohortFacts:
    deals_by_stage_set: list[tuple[frozenset[uuid.UUID], int]]
    stays: dict[uuid.UUID, StayFigures]


def whole_days(start: datetime, end: datetime) -> tuple[datetime, datetime]:
    """`[start, end)` widened to whole UTC days: start down to its midnight, end up to the next
    midnight unless it is one already."""
    first = datetime.combine(start.astimezone(UTC).date(), time(), UTC)
    last = datetime.combine(end.astimezone(UTC).date(), time(), UTC)
    if last == end:
        return first, last
    if last.date() == date.max:
        raise ValidationFailed(FieldError(("query", "until"), "must be before 9999-12-31 in UTC"))
    return first, last + timedelta(days=1)


def bucket_bounds(bucket: int) -> tuple[float, float]:
    """The stay lengths, in seconds, that a bucket holds: `[low, high)`."""
    if bucket == 0:
        return 0.0, 1.0
    return STAY_BUCKET_RATIO ** (bucket - 1), STAY_BUCKET_RATIO**bucket


def histogram_median(counts: dict[int, int]) -> float | None:
    """The median stay, in seconds, of a histogram {bucket: stays}, as `percentile_cont(0.5)`
    would give over the stays each placed evenly inside its bucket."""
    total = sum(counts.values())
    if not total:
        return None
    middle = (total - 1) / 2

    def placed(rank: int) -> float:
        before = 0
        for bucket in sorted(counts):
            if rank < before + counts[bucket]:
                low, high = bucket_bounds(bucket)
                return low + (rank - before + 0.5) / counts[bucket] * (high - low)
            before += counts[bucket]
        raise ValueError(rank)

    return (placed(math.floor(middle)) + placed(math.ceil(middle))) / 2


def _owner_rows(
    principal: Principal, owner_column: Any, all_owners_column: Any, owner_id: uuid.UUID | None
) -> list[ColumnElement[bool]]:
    """The organisation-wide rows for a caller who sees every deal; otherwise the owner rows it may
    see (the rule `TenantRepository.scoped()` applies to deals), and only `owner_id`'s if given."""
    visible = visible_owner_clause(principal, owner_column)
    if visible is None and owner_id is None:
        return [all_owners_column == true(), owner_column.is_(None)]
    conditions: list[ColumnElement[bool]] = [all_owners_column == false()]
    if visible is not None:
        conditions.append(visible)
    if owner_id is not None:
        conditions.append(owner_column == owner_id)
    return conditions


async def cohort_facts(
    session: AsyncSession,
    principal: Principal,
    *,
    pipeline_id: uuid.UUID,
    first_day: date,
    after_day: date,
    stage_ids: Collection[uuid.UUID],
    owner_id: uuid.UUID | None,
) -> CohortFacts:
    """The cohorts of `[first_day, after_day)` in the pipeline: deals per set of stages entered, and
    the stays in `stage_ids`. Two index range scans of the facts' unique keys."""
    cohort, stay = FunnelCohort, FunnelStay
    counts = (
        select(cohort.stage_ids, func.sum(cohort.deals))
        .where(
            cohort.organization_id == principal.organization_id,
            cohort.pipeline_id == pipeline_id,
            *_owner_rows(principal, cohort.owner_id, cohort.all_owners, owner_id),
            cohort.cohort_day >= first_day,
            cohort.cohort_day < after_day,
        )
        .group_by(cohort.stage_ids)
    )
    sets = [(frozenset(stage_set), int(deals)) for stage_set, deals in await session.execute(counts)]
    histograms = (
        select(stay.stage_id, stay.bucket, func.sum(stay.stays), func.sum(stay.microseconds))
        .where(
            stay.organization_id == principal.organization_id,
            stay.pipeline_id == pipeline_id,
            *_owner_rows(principal, stay.owner_id, stay.all_owners, owner_id),
            stay.cohort_day >= first_day,
            stay.cohort_day < after_day,
            stay.stage_id.in_(list(stage_ids)),
        )
        .group_by(stay.stage_id, stay.bucket)
    )
    buckets: dict[uuid.UUID, dict[int, int]] = {}
    microseconds: dict[uuid.UUID, int] = {}
    for stage_id, bucket, stays, summed in await session.execute(histograms):
        buckets.setdefault(stage_id, {})[bucket] = int(stays)
        microseconds[stage_id] = microseconds.get(stage_id, 0) + int(summed)
    figures = {}
    for stage_id, counted in buckets.items():
        total = sum(counted.values())
        figures[stage_id] = StayFigures(
            stays=total,
            median_seconds=histogram_median(counted),
            average_seconds=microseconds[stage_id] / MICROSECONDS / total if total else None,
        )
    return CohortFacts(deals_by_stage_set=sets, stays=figures)
