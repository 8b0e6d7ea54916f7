"""/api/v1/pipelines and their stages."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Response

from app.core.permissions import Scope
from app.core.principal import Principal
from app.routers.deps import (
    API_PREFIX,
    AUTHENTICATED,
    ApiRoute,
    ExpectedVersionDep,
    SessionDep,
    problems,
    record_reply,
    require,
)
from app.schemas.deal import DealRead
from app.schemas.pipeline import (
    BoardColumn,
    BoardRead,
    CurrencyTotal,
    PipelineCreate,
    PipelinePage,
    PipelineRead,
    PipelineUpdate,
    StageCreate,
    StageOrder,
    StageRead,
    StageUpdate,
)
from app.services import deals, pipelines

router = APIRouter(prefix=API_PREFIX + "/pipelines", tags=["pipelines"], route_class=ApiRoute)
Reader = Annotated[Principal, require(Scope.pipelines_read)]
Writer = Annotated[Principal, require(Scope.pipelines_write)]
DealReader = Annotated[Principal, require(Scope.deals_read)]


def _reply(pipeline: object, *, status_code: int = 200) -> Response:
    reply = PipelineRead.model_validate(pipeline)
    location = f"{API_PREFIX}/pipelines/{reply.id}" if status_code == 201 else None
    return record_reply(reply, status_code=status_code, location=location)


@router.get("", operation_id="pipelines_list", response_model=PipelinePage, responses=problems(*AUTHENTICATED))
async def list_pipelines(session: SessionDep, principal: Reader) -> PipelinePage:
    """Every pipeline of the organisation (at most 50), the default first, with its stages."""
    found = await pipelines.list_pipelines(session, principal)
    return PipelinePage(items=[PipelineRead.model_validate(p) for p in found], next_cursor=None)


@router.post(
    "",
    operation_id="pipelines_create",
    status_code=201,
    response_model=PipelineRead,
    responses=problems(*AUTHENTICATED, 409),
)
async def create_pipeline(session: SessionDep, principal: Writer, body: PipelineCreate) -> Response:
    return _reply(await pipelines.create_pipeline(session, principal, data=body), status_code=201)


@router.get(
    "/{pipeline_id}", operation_id="pipelines_get", response_model=PipelineRead, responses=problems(*AUTHENTICATED, 404)
)
async def get_pipeline(session: SessionDep, principal: Reader, pipeline_id: uuid.UUID) -> Response:
    return _reply(await pipelines.get_pipeline(session, principal, pipeline_id))


@router.patch(
    "/{pipeline_id}",
    operation_id="pipelines_update",
    response_model=PipelineRead,
    responses=problems(*AUTHENTICATED, 404, 409, 412),
)
async def update_pipeline(
    session: SessionDep, principal: Writer, pipeline_id: uuid.UUID, body: PipelineUpdate, version: ExpectedVersionDep
) -> Response:
    pipeline = await pipelines.update_pipeline(session, principal, pipeline_id, data=body, expected_version=version)
    return _reply(pipeline)


@router.delete(
    "/{pipeline_id}",
    operation_id="pipelines_delete",
    status_code=204,
    responses=problems(*AUTHENTICATED, 404, 409, 412),
    summary="Delete a pipeline that holds no deals and is not the default",
)
async def delete_pipeline(
    session: SessionDep, principal: Writer, pipeline_id: uuid.UUID, version: ExpectedVersionDep
) -> Response:
    await pipelines.delete_pipeline(session, principal, pipeline_id, expected_version=version)
    return Response(status_code=204)


@router.get(
    "/{pipeline_id}/stages",
    operation_id="pipeline_stages_list",
    response_model=list[StageRead],
    responses=problems(*AUTHENTICATED, 404),
)
async def list_stages(session: SessionDep, principal: Reader, pipeline_id: uuid.UUID) -> list[StageRead]:
    pipeline = await pipelines.get_pipeline(session, principal, pipeline_id)
    return [StageRead.model_validate(stage) for stage in pipeline.stages]


@router.post(
    "/{pipeline_id}/stages",
    operation_id="pipeline_stages_create",
    status_code=201,
    response_model=StageRead,
    responses=problems(*AUTHENTICATED, 404, 409),
)
async def create_stage(session: SessionDep, principal: Writer, pipeline_id: uuid.UUID, body: StageCreate) -> Response:
    # A stage has no version of its own (its pipeline's ETag covers it): no ETag, so no record_reply.
    _, stage = await pipelines.create_stage(session, principal, pipeline_id, data=body)
    return Response(
        StageRead.model_validate(stage).model_dump_json(),
        status_code=201,
        headers={"Location": f"{API_PREFIX}/pipelines/{pipeline_id}/stages"},
        media_type="application/json",
    )


@router.patch(
    "/{pipeline_id}/stages/{stage_id}",
    operation_id="pipeline_stages_update",
    response_model=StageRead,
    responses=problems(*AUTHENTICATED, 404, 409),
    summary="Rename a stage or change its probability (deals that follow it follow) or kind (while empty)",
)
async def update_stage(
    session: SessionDep, principal: Writer, pipeline_id: uuid.UUID, stage_id: uuid.UUID, body: StageUpdate
) -> StageRead:
    stage = await deals.update_stage(session, principal, pipeline_id, stage_id, data=body)
    return StageRead.model_validate(stage)


@router.delete(
    "/{pipeline_id}/stages/{stage_id}",
    operation_id="pipeline_stages_delete",
    response_model=PipelineRead,
    responses=problems(*AUTHENTICATED, 404, 409),
    summary="Delete a stage; the deals in it move to `move_to`, with their stage history",
)
async def delete_stage(
    session: SessionDep,
    principal: Writer,
    pipeline_id: uuid.UUID,
    stage_id: uuid.UUID,
    move_to: Annotated[
        uuid.UUID | None, Query(description="Another stage of this pipeline; required when the stage holds deals")
    ] = None,
) -> Response:
    return _reply(await deals.delete_stage(session, principal, pipeline_id, stage_id, move_to=move_to))


@router.post(
    "/{pipeline_id}/stages/reorder",
    operation_id="pipeline_stages_reorder",
    response_model=PipelineRead,
    responses=problems(*AUTHENTICATED, 404),
)
async def reorder_stages(session: SessionDep, principal: Writer, pipeline_id: uuid.UUID, body: StageOrder) -> Response:
    return _reply(await pipelines.reorder_stages(session, principal, pipeline_id, stage_ids=body.stage_ids))


@router.get(
    "/{pipeline_id}/board",
    operation_id="pipelines_board",
    response_model=BoardRead,
    responses=problems(*AUTHENTICATED, 404),
    summary="Per stage: the number of deals, their amount and weighted amount per currency, and the first deals",
)
async def pipeline_board(
    session: SessionDep,
    principal: DealReader,
    pipeline_id: uuid.UUID,
    owner_id: uuid.UUID | None = None,
    limit: Annotated[int, Query(ge=1, le=100, description="Deals per stage")] = 20,
) -> BoardRead:
    pipeline, columns = await deals.board(session, principal, pipeline_id, limit=limit, owner_id=owner_id)
    return BoardRead(
        pipeline_id=pipeline.id,
        columns=[
            BoardColumn(
                stage=StageRead.model_validate(column.stage),
                count=column.count,
                totals=[
                    CurrencyTotal(currency=t.currency, amount=str(t.amount), weighted_amount=str(t.weighted_amount))
                    for t in column.totals
                ],
                deals=[DealRead.model_validate(deal) for deal in column.deals.items],
                next_cursor=column.deals.next_cursor,
            )
            for column in columns
        ],
    )
