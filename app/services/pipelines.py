"""Pipelines and their stages: the sales process an organisation's deals move through.

A pipeline always has at least one open, one won and one lost stage, so every deal can be
worked and closed. Stage changes lock their pipeline and bump its version, so its ETag covers its
stages. A deleted stage is archived (deal stage history keeps pointing at it); moving its deals
out first is the deals service's part.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.core import audit
from app.core.db import transaction_cache
from app.core.enums import AuditAction, StageKind
from app.core.errors import Conflict, FieldError, NotFound, ValidationFailed
from app.core.principal import Principal
from app.core.repository import TenantRepository
from app.models.base import utcnow
from app.models.deal import Deal, DealStageVisit
from app.models.pipeline import Pipeline, PipelineStage
from app.schemas.pipeline import PipelineCreate, PipelineUpdate, StageCreate, StageUpdate

MAX_PIPELINES: Final = 50
MAX_STAGES: Final = 50
_LIVE_STAGES_KEY: Final = "pipelines.live_stages"


@dataclass(frozen=True, slots=True)
class StageTemplate:
    name: str
    probability: int
    kind: StageKind


# The brief's sales process: prospect → needs analysis → proposal → negotiation → won / lost.
DEFAULT_PIPELINE_NAME: Final = "销售管道"
DEFAULT_STAGES: Final = (
    StageTemplate("潜在客户", 10, StageKind.open),
    StageTemplate("需求分析", 20, StageKind.open),
    StageTemplate("方案制定", 40, StageKind.open),
    StageTemplate("商务谈判", 70, StageKind.open),
    StageTemplate("成交", 100, StageKind.won),
    StageTemplate("输单", 0, StageKind.lost),
)


def _pipelines(session: AsyncSession, principal: Principal) -> TenantRepository[Pipeline]:
    return TenantRepository(Pipeline, session, principal, label="pipeline")


def _check_kinds(kinds: Sequence[StageKind], loc: tuple[str | int, ...]) -> None:
    missing = [kind.value for kind in StageKind if kind not in kinds]
    if missing:
        raise ValidationFailed(
            FieldError(loc, f"a pipeline needs at least one open, one won and one lost stage; none is {missing[0]}")
        )


def _check_names(names: Sequence[str], loc: tuple[str | int, ...]) -> None:
    """Names within one request body differ (else a 422)."""
    repeated = [name for name, count in Counter(names).items() if count > 1]
    if repeated:
        raise ValidationFailed(FieldError(loc, f"stage names must differ; {repeated[0]!r} is given twice"))


def _check_name_free(stages: Sequence[PipelineStage], name: str, *, keep: uuid.UUID | None = None) -> None:
    """A name another live stage of the pipeline already has is a conflict (409), as the unique index says."""
    if any(stage.name == name and stage.id != keep for stage in stages):
        raise Conflict("The pipeline already has a stage with this name")


def _audit(
    session: AsyncSession,
    principal: Principal,
    entity_type: str,
    entity_id: uuid.UUID,
    action: AuditAction,
    changes: audit.Changes,
) -> None:
    audit.record(session, principal, action=action, entity_type=entity_type, entity_id=entity_id, changes=changes)


async def _add_pipeline(
    session: AsyncSession,
    principal: Principal,
    *,
    name: str,
    is_default: bool,
    stages: Sequence[StageTemplate],
) -> Pipeline:
    pipeline = Pipeline(organization_id=principal.organization_id, name=name, is_default=is_default)
    session.add(pipeline)
    await session.flush()
    rows = [
        PipelineStage(
            organization_id=principal.organization_id,
            pipeline_id=pipeline.id,
            name=stage.name,
            position=position,
            probability=stage.probability,
            kind=stage.kind,
        )
        for position, stage in enumerate(stages)
    ]
    session.add_all(rows)
    await session.flush()
    await session.refresh(pipeline, attribute_names=["stages"])
    snapshot = audit.snapshot(pipeline) | {"stages": [audit.snapshot(row, exclude={"pipeline_id"}) for row in rows]}
    _audit(session, principal, "pipeline", pipeline.id, AuditAction.create, audit.creation(snapshot))
    return pipeline


async def create_default_pipeline(session: AsyncSession, principal: Principal) -> Pipeline:
    """A new organisation's sales pipeline (editable like any other)."""
    return await _add_pipeline(session, principal, name=DEFAULT_PIPELINE_NAME, is_default=True, stages=DEFAULT_STAGES)


async def list_pipelines(session: AsyncSession, principal: Principal) -> list[Pipeline]:
    statement = _pipelines(session, principal).scoped().order_by(Pipeline.is_default.desc(), Pipeline.name)
    return list((await session.scalars(statement)).all())


async def get_pipeline(session: AsyncSession, principal: Principal, pipeline_id: uuid.UUID) -> Pipeline:
    return await _pipelines(session, principal).get(pipeline_id)


async def _unset_default(session: AsyncSession, principal: Principal) -> None:
    await session.execute(
        update(Pipeline)
        .where(Pipeline.organization_id == principal.organization_id, Pipeline.is_default)
        .values(is_default=False, version=Pipeline.version + 1, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )


async def create_pipeline(session: AsyncSession, principal: Principal, *, data: PipelineCreate) -> Pipeline:
    count = await session.scalar(
        select(func.count()).select_from(Pipeline).where(Pipeline.organization_id == principal.organization_id)
    )
    if (count or 0) >= MAX_PIPELINES:
        raise Conflict(f"An organisation has at most {MAX_PIPELINES} pipelines")
    if data.stages is None:
        stages: Sequence[StageTemplate] = DEFAULT_STAGES
    else:
        _check_kinds([stage.kind for stage in data.stages], ("body", "stages"))
        _check_names([stage.name for stage in data.stages], ("body", "stages"))
        stages = [StageTemplate(stage.name, stage.probability, stage.kind) for stage in data.stages]
    if data.is_default:
        await _unset_default(session, principal)
    return await _add_pipeline(session, principal, name=data.name, is_default=data.is_default, stages=stages)


async def default_pipeline(session: AsyncSession, principal: Principal) -> Pipeline:
    statement = _pipelines(session, principal).scoped().where(Pipeline.is_default)
    pipeline = (await session.scalars(statement)).first()
    if pipeline is None:
        raise Conflict("The organisation has no default pipeline; make one the default first")
    return pipeline


async def _locked(
    session: AsyncSession, principal: Principal, pipeline_id: uuid.UUID, expected_version: int | None = None
) -> Pipeline:
    pipeline = await _pipelines(session, principal).locked(pipeline_id, expected_version=expected_version)
    return pipeline


async def _touched(session: AsyncSession, pipeline: Pipeline) -> Pipeline:
    """After a change to its stages: a new version, and its stages read again."""
    pipeline.updated_at = utcnow()
    await session.flush()
    # A batched (executemany) UPDATE of several stages stamps each row's `updated_at` on its own, but
    # the session gives every object the first row's stamp: read the stages afresh, so the reply
    # shows what a GET will.
    for stage in pipeline.stages:
        session.expire(stage)
    await session.refresh(pipeline, attribute_names=["stages"])
    return pipeline


async def update_pipeline(
    session: AsyncSession,
    principal: Principal,
    pipeline_id: uuid.UUID,
    *,
    data: PipelineUpdate,
    expected_version: int | None,
) -> Pipeline:
    pipeline = await _locked(session, principal, pipeline_id, expected_version)
    changes = data.changes()
    if changes.get("is_default") is False and pipeline.is_default:
        raise ValidationFailed(
            FieldError(("body", "is_default"), "make another pipeline the default instead; one always is")
        )
    before = audit.snapshot(pipeline)
    if changes.get("is_default") and not pipeline.is_default:
        await _unset_default(session, principal)
    for name, value in changes.items():
        setattr(pipeline, name, value)
    if delta := audit.diff(before, audit.snapshot(pipeline)):
        await session.flush()
        _audit(session, principal, "pipeline", pipeline.id, AuditAction.update, delta)
    return pipeline


async def delete_pipeline(
    session: AsyncSession, principal: Principal, pipeline_id: uuid.UUID, *, expected_version: int | None
) -> None:
    pipeline = await _locked(session, principal, pipeline_id, expected_version)
    if pipeline.is_default:
        raise Conflict("The default pipeline cannot be deleted; make another one the default first")
    held = await session.scalar(
        select(func.count())
        .select_from(Deal)
        .where(Deal.organization_id == principal.organization_id, Deal.pipeline_id == pipeline.id)
    )
    if held:
        raise Conflict(f"The pipeline holds {held} deals (archived ones included); move them first")
    visited = await session.scalar(
        select(func.count())
        .select_from(DealStageVisit)
        .where(DealStageVisit.organization_id == principal.organization_id, DealStageVisit.pipeline_id == pipeline.id)
    )
    if visited:
        raise Conflict("Deals' stage history passes through the pipeline; it is kept for that history")
    _audit(session, principal, "pipeline", pipeline.id, AuditAction.delete, {"name": {"before": pipeline.name}})
    await session.delete(pipeline)
    await session.flush()


async def live_stage(
    session: AsyncSession, principal: Principal, stage_id: uuid.UUID, *, loc: tuple[str | int, ...]
) -> PipelineStage:
    """A stage a deal may be put in, named in a request body: else a 422 at `loc`. Found once a
    transaction (a batch or an import chunk names the same few stages for every deal); a stage
    archived since in this transaction is seen on the session's own object."""
    found = transaction_cache(session, _LIVE_STAGES_KEY)
    stage: PipelineStage | None = found.get((principal.organization_id, stage_id))
    if stage is None:
        stage = await session.scalar(
            select(PipelineStage).where(
                PipelineStage.organization_id == principal.organization_id,
                PipelineStage.id == stage_id,
                PipelineStage.archived_at.is_(None),
            )
        )
    if stage is None or stage.archived_at is not None:
        raise ValidationFailed(FieldError(loc, f"no stage with id {stage_id}"))
    found[(principal.organization_id, stage_id)] = stage
    return stage


async def _stage_of(
    session: AsyncSession, principal: Principal, pipeline: Pipeline, stage_id: uuid.UUID
) -> PipelineStage:
    stage = next((stage for stage in pipeline.stages if stage.id == stage_id), None)
    if stage is None:
        raise NotFound(f"No stage with id {stage_id} in this pipeline")
    return stage


async def _renumber(session: AsyncSession, stages: Sequence[PipelineStage]) -> None:
    for position, stage in enumerate(stages):
        if stage.position != position:
            stage.position = position
    await session.flush()


async def create_stage(
    session: AsyncSession, principal: Principal, pipeline_id: uuid.UUID, *, data: StageCreate
) -> tuple[Pipeline, PipelineStage]:
    pipeline = await _locked(session, principal, pipeline_id)
    stages = list(pipeline.stages)
    if len(stages) >= MAX_STAGES:
        raise Conflict(f"A pipeline has at most {MAX_STAGES} stages")
    _check_name_free(stages, data.name)
    if data.position is not None:
        position = min(data.position, len(stages))
    elif data.kind is StageKind.open:
        position = next((i for i, stage in enumerate(stages) if stage.kind is not StageKind.open), len(stages))
    else:
        position = len(stages)
    stage = PipelineStage(
        organization_id=principal.organization_id,
        pipeline_id=pipeline.id,
        name=data.name,
        position=position,
        probability=data.probability,
        kind=data.kind,
    )
    await _renumber(session, [*stages[:position], stage, *stages[position:]])
    session.add(stage)
    await session.flush()
    _audit(session, principal, "pipeline_stage", stage.id, AuditAction.create, audit.creation(audit.snapshot(stage)))
    return await _touched(session, pipeline), stage


async def update_stage(
    session: AsyncSession, principal: Principal, pipeline_id: uuid.UUID, stage_id: uuid.UUID, *, data: StageUpdate
) -> tuple[Pipeline, PipelineStage]:
    pipeline = await _locked(session, principal, pipeline_id)
    stage = await _stage_of(session, principal, pipeline, stage_id)
    changes = data.changes()
    if "name" in changes:
        _check_name_free(pipeline.stages, changes["name"], keep=stage.id)
    if "kind" in changes and changes["kind"] != stage.kind:
        if await deal_count(session, principal, stage.id):
            raise Conflict("The stage holds deals; its kind changes only while it is empty")
        _check_kinds([changes["kind"] if s.id == stage.id else s.kind for s in pipeline.stages], ("body", "kind"))
    before = audit.snapshot(stage)
    for name, value in changes.items():
        setattr(stage, name, value)
    delta = audit.diff(before, audit.snapshot(stage))
    if not delta:
        return pipeline, stage
    await session.flush()
    _audit(session, principal, "pipeline_stage", stage.id, AuditAction.update, delta)
    return await _touched(session, pipeline), stage


async def reorder_stages(
    session: AsyncSession, principal: Principal, pipeline_id: uuid.UUID, *, stage_ids: Sequence[uuid.UUID]
) -> Pipeline:
    pipeline = await _locked(session, principal, pipeline_id)
    by_id = {stage.id: stage for stage in pipeline.stages}
    if len(stage_ids) != len(by_id) or set(stage_ids) != set(by_id):
        raise ValidationFailed(FieldError(("body", "stage_ids"), "must name every stage of the pipeline exactly once"))
    before = [stage.id for stage in pipeline.stages]
    await _renumber(session, [by_id[stage_id] for stage_id in stage_ids])
    if before != list(stage_ids):
        changes = {"stage_order": {"before": [str(i) for i in before], "after": [str(i) for i in stage_ids]}}
        _audit(session, principal, "pipeline", pipeline.id, AuditAction.update, changes)
    return await _touched(session, pipeline)


async def deal_count(session: AsyncSession, principal: Principal, stage_id: uuid.UUID) -> int:
    """Deals in the stage, archived ones included (whoever may see them)."""
    count = await session.scalar(
        select(func.count())
        .select_from(Deal)
        .where(Deal.organization_id == principal.organization_id, Deal.stage_id == stage_id)
    )
    return int(count or 0)


async def stage_to_remove(
    session: AsyncSession, principal: Principal, pipeline_id: uuid.UUID, stage_id: uuid.UUID
) -> tuple[Pipeline, PipelineStage]:
    """The pipeline (locked) and a stage that may go, once its deals are elsewhere."""
    pipeline = await _locked(session, principal, pipeline_id)
    stage = await _stage_of(session, principal, pipeline, stage_id)
    _check_kinds([s.kind for s in pipeline.stages if s.id != stage.id], ("path", "stage_id"))
    return pipeline, stage


async def archive_stage(
    session: AsyncSession, principal: Principal, pipeline: Pipeline, stage: PipelineStage
) -> Pipeline:
    if await deal_count(session, principal, stage.id):
        raise Conflict("The stage still holds deals")
    stage.archived_at = utcnow()
    await _renumber(session, [s for s in pipeline.stages if s.id != stage.id])
    changes = {"archived_at": {"before": None, "after": stage.archived_at.isoformat()}}
    _audit(session, principal, "pipeline_stage", stage.id, AuditAction.delete, changes)
    return await _touched(session, pipeline)
