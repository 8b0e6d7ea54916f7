"""Funnel facts: what the cohort funnel reads instead of the stage history.

Kept exact by the database (migration 0021), never written by the application: triggers on
`deal_stage_history` and `deals` queue the deals a transaction touches in `funnel_dirty`, and the
transaction's commit applies them. Nothing here depends on the stages' order: a report maps stage sets to
steps with the order of the moment, so reordering, renaming or archiving stages needs no rebuild.
Rows with `all_owners` are the organisation-wide sums (owner collapsed, `owner_id` NULL) that an
unrestricted funnel reads; the others are per owner (`owner_id` NULL: deals without one).
"""

from __future__ import annotations

import uuid
from datetime import date
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, ForeignKeyConstraint, SmallInteger, UniqueConstraint, Uuid
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, declared_attr, mapped_column

from app.models.base import Base


def _organization() -> Mapped[uuid.UUID]:
    return mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))


class FunnelDealPath(Base):
    """A deal in one pipeline: its cohort (the UTC day it first entered the pipeline), owner,
    whether it is active (not archived), the sorted set of stages it has entered there and its
    finished visits (stage and length in microseconds, in entry order). What a commit subtracts
    when the deal changes, the history having moved on by then; reports read the sums below."""

    __tablename__ = "funnel_deal_paths"

    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True
    )
    # No foreign key to deals: a deleted deal's row must still be there for the commit to subtract.
    deal_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    pipeline_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    cohort_day: Mapped[date]
    owner_id: Mapped[uuid.UUID | None]
    active: Mapped[bool]
    stage_ids: Mapped[list[uuid.UUID]] = mapped_column(ARRAY(Uuid()))
    stay_stage_ids: Mapped[list[uuid.UUID]] = mapped_column(ARRAY(Uuid()))
    stay_microseconds: Mapped[list[int]] = mapped_column(ARRAY(BigInteger()))


class FunnelDirty(Base):
    """A deal whose facts the writing transaction (`xact_id`, from `txid_current()`) must redo at
    its commit; the commit deletes the row. UNLOGGED: no row outlives its transaction."""

    __tablename__ = "funnel_dirty"
    __table_args__ = ({"prefixes": ["UNLOGGED"]},)

    xact_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    organization_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    deal_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)


class FunnelCohort(Base):
    """Active deals per pipeline, cohort day, owner and set of stages entered."""

    __tablename__ = "funnel_cohorts"
    __table_args__ = (
        UniqueConstraint(
            "organization_id",
            "pipeline_id",
            "all_owners",
            "owner_id",
            "cohort_day",
            "stage_ids",
            postgresql_nulls_not_distinct=True,
        ),
    )

    organization_id: Mapped[uuid.UUID] = _organization()
    pipeline_id: Mapped[uuid.UUID]
    all_owners: Mapped[bool]
    owner_id: Mapped[uuid.UUID | None]
    cohort_day: Mapped[date]
    stage_ids: Mapped[list[uuid.UUID]] = mapped_column(ARRAY(Uuid()))
    deals: Mapped[int]

    # Read as rows, never as entities: the unique key stands in for the primary key the table
    # cannot have (owner_id is NULL on organisation-wide rows).
    @declared_attr.directive
    def __mapper_args__(cls) -> dict[str, Any]:
        columns = cls.__table__.c
        keys = ("organization_id", "pipeline_id", "all_owners", "owner_id", "cohort_day", "stage_ids")
        return {"primary_key": [columns[name] for name in keys]}


class FunnelStay(Base):
    """Finished stage visits of active deals per pipeline, cohort day, owner, stage and bucket of
    the stay's length (log-spaced, see `app.services.funnel_cohorts`): how many, and their summed
    length in microseconds."""

    __tablename__ = "funnel_stays"
    __table_args__ = (
        ForeignKeyConstraint(
            ["organization_id", "pipeline_id", "stage_id"],
            ["pipeline_stages.organization_id", "pipeline_stages.pipeline_id", "pipeline_stages.id"],
            ondelete="CASCADE",
        ),
        UniqueConstraint(
            "organization_id",
            "pipeline_id",
            "all_owners",
            "owner_id",
            "cohort_day",
            "stage_id",
            "bucket",
            postgresql_nulls_not_distinct=True,
        ),
    )

    organization_id: Mapped[uuid.UUID] = _organization()
    pipeline_id: Mapped[uuid.UUID]
    all_owners: Mapped[bool]
    owner_id: Mapped[uuid.UUID | None]
    cohort_day: Mapped[date]
    stage_id: Mapped[uuid.UUID]
    bucket: Mapped[int] = mapped_column(SmallInteger)
    stays: Mapped[int]
    microseconds: Mapped[int] = mapped_column(BigInteger)

    @declared_attr.directive
    def __mapper_args__(cls) -> dict[str, Any]:
        columns = cls.__table__.c
        keys = ("organization_id", "pipeline_id", "all_owners", "owner_id", "cohort_day", "stage_id", "bucket")
        return {"primary_key": [columns[name] for name in keys]}
