"""Sales pipelines and their ordered stages."""

from __future__ import annotations

import uuid

from sqlalchemy import CheckConstraint, ForeignKeyConstraint, Index, SmallInteger, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.core.enums import StageKind
from app.models.base import ArchivableMixin, Base, TenantMixin, TimestampMixin, VersionedMixin, str_enum


class Pipeline(TenantMixin, TimestampMixin, VersionedMixin, Base):
    __tablename__ = "pipelines"
    __table_args__ = (
        UniqueConstraint("organization_id", "name"),
        # One default per organisation: where deals go when none is named.
        Index("uq_pipelines_default", "organization_id", unique=True, postgresql_where=text("is_default")),
    )

    name: Mapped[str] = mapped_column(String(100))
    is_default: Mapped[bool] = mapped_column(default=False)

    # The live stages in order, as the API shows them; written through PipelineStage rows.
    stages: Mapped[list[PipelineStage]] = relationship(
        primaryjoin="and_(Pipeline.organization_id == PipelineStage.organization_id, "
        "Pipeline.id == foreign(PipelineStage.pipeline_id), PipelineStage.archived_at.is_(None))",
        order_by="PipelineStage.position",
        viewonly=True,
        lazy="selectin",
    )


class PipelineStage(TenantMixin, TimestampMixin, ArchivableMixin, Base):
    """A deleted stage is archived, not removed: deal stage history keeps pointing at it."""

    __tablename__ = "pipeline_stages"
    __table_args__ = (
        ForeignKeyConstraint(
            ["organization_id", "pipeline_id"],
            ["pipelines.organization_id", "pipelines.id"],
            ondelete="CASCADE",
        ),
        # The target of deals' (organization_id, pipeline_id, stage_id): a deal's stage is in its pipeline.
        UniqueConstraint("organization_id", "pipeline_id", "id"),
        Index(
            "uq_pipeline_stages_live_name",
            "organization_id",
            "pipeline_id",
            "name",
            unique=True,
            postgresql_where=text("archived_at IS NULL"),
        ),
        CheckConstraint("probability BETWEEN 0 AND 100", name="probability_range"),
    )

    pipeline_id: Mapped[uuid.UUID]
    name: Mapped[str] = mapped_column(String(100))
    # 0-based order of the live stages within the pipeline, kept dense by the service.
    position: Mapped[int] = mapped_column(SmallInteger)
    # Win probability in percent: a deal's probability unless the deal sets its own.
    probability: Mapped[int] = mapped_column(SmallInteger)
    kind: Mapped[StageKind] = mapped_column(str_enum(StageKind, "stage_kind"))
