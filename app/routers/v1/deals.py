"""/api/v1/deals"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response

from app.core.enums import StageKind
from app.core.pagination import DEFAULT_LIMIT, Page
from app.core.permissions import Scope
from app.core.principal import Principal
from app.routers.deps import (
    API_PREFIX,
    AUTHENTICATED,
    ApiRoute,
    CursorDep,
    ExpectedVersionDep,
    ExternalIdPath,
    LimitDep,
    SessionDep,
    SortDep,
    problems,
    record_reply,
    require,
    search_query,
)
from app.schemas.audit import AuditEntryPage, AuditEntryRead
from app.schemas.batch import BatchCreate, BatchRead, BatchResultRead
from app.schemas.deal import DealCreate, DealMove, DealPage, DealRead, DealUpdate, StageVisitPage, StageVisitRead
from app.schemas.search import SearchRequest
from app.services import deals
from app.services.records import FindQuery

router = APIRouter(prefix=API_PREFIX + "/deals", tags=["deals"], route_class=ApiRoute)
Reader = Annotated[Principal, require(Scope.deals_read)]
Writer = Annotated[Principal, require(Scope.deals_write)]


def _page(page: Page[Any]) -> DealPage:
    return DealPage(items=[DealRead.model_validate(d) for d in page.items], next_cursor=page.next_cursor)


def _reply(deal: Any, *, created: bool = False) -> Response:
    reply = DealRead.model_validate(deal)
    if created:
        return record_reply(reply, status_code=201, location=f"{API_PREFIX}/deals/{reply.id}")
    return record_reply(reply)


@router.get("", operation_id="deals_list", response_model=DealPage, responses=problems(*AUTHENTICATED))
async def list_deals(
    session: SessionDep,
    principal: Reader,
    q: Annotated[str | None, Query(max_length=200, description="Substring of the name or external_id")] = None,
    pipeline_id: uuid.UUID | None = None,
    stage_id: uuid.UUID | None = None,
    status: StageKind | None = None,
    company_id: uuid.UUID | None = None,
    owner_id: uuid.UUID | None = None,
    currency: str | None = None,
    tag: str | None = None,
    external_id: str | None = None,
    archived: Annotated[bool, Query(description="List archived deals instead of active ones")] = False,
    sort: SortDep = None,
    cursor: CursorDep = None,
    limit: LimitDep = DEFAULT_LIMIT,
) -> DealPage:
    equals = {
        "pipeline_id": pipeline_id,
        "stage_id": stage_id,
        "status": status,
        "company_id": company_id,
        "owner_id": owner_id,
        "currency": currency.upper() if currency else None,
        "tags": tag,
        "external_id": external_id,
    }
    query = FindQuery(
        equals={k: str(v) for k, v in equals.items() if v is not None},
        q=q,
        sort=sort,
        cursor=cursor,
        limit=limit,
        archived=archived,
    )
    return _page(await deals.find_deals(session, principal, query))


@router.post("/search", operation_id="deals_search", response_model=DealPage, responses=problems(*AUTHENTICATED))
async def search_deals(session: SessionDep, principal: Reader, body: SearchRequest) -> DealPage:
    return _page(await deals.find_deals(session, principal, search_query(body)))


@router.post(
    "",
    operation_id="deals_create",
    status_code=201,
    response_model=DealRead,
    responses=problems(*AUTHENTICATED, 409),
)
async def create_deal(session: SessionDep, principal: Writer, body: DealCreate) -> Response:
    return _reply(await deals.create_deal(session, principal, data=body), created=True)


@router.post(
    "/batch",
    operation_id="deals_batch",
    response_model=BatchRead,
    responses=problems(*AUTHENTICATED, 409),
    summary="Create or upsert up to 1,000 deals, one result per record",
    description="Upsert matches on `external_id` (required in upsert mode). Each deal is written as a single create "
    "or PATCH writes it; a bad record fails alone (its result carries a problem document) unless `atomic=true`.",
)
async def batch_deals(
    session: SessionDep,
    principal: Writer,
    body: BatchCreate,
    atomic: Annotated[bool, Query(description="All records or none")] = False,
) -> BatchRead:
    results = await deals.write_deals(session, principal, mode=body.mode, items=body.records, atomic=atomic)
    return BatchRead(results=[BatchResultRead.model_validate(r, from_attributes=True) for r in results])


@router.get("/{deal_id}", operation_id="deals_get", response_model=DealRead, responses=problems(*AUTHENTICATED, 404))
async def get_deal(session: SessionDep, principal: Reader, deal_id: uuid.UUID) -> Response:
    return _reply(await deals.get_deal(session, principal, deal_id))


@router.put(
    "/external/{external_id:path}",
    operation_id="deals_upsert",
    response_model=DealRead,
    responses=problems(*AUTHENTICATED, 404, 409, 412),
    summary="Create or update the deal another system knows by `external_id`",
    description="The body is a PATCH body: on an existing deal only the fields sent change; a new one is "
    "created from them (201).",
)
async def upsert_deal(
    session: SessionDep, principal: Writer, external_id: ExternalIdPath, body: DealUpdate, version: ExpectedVersionDep
) -> Response:
    deal, created = await deals.upsert_deal(session, principal, external_id, data=body, expected_version=version)
    return _reply(deal, created=created)


@router.patch(
    "/{deal_id}",
    operation_id="deals_update",
    response_model=DealRead,
    responses=problems(*AUTHENTICATED, 404, 409, 412),
)
async def update_deal(
    session: SessionDep, principal: Writer, deal_id: uuid.UUID, body: DealUpdate, version: ExpectedVersionDep
) -> Response:
    return _reply(await deals.update_deal(session, principal, deal_id, data=body, expected_version=version))


@router.post(
    "/{deal_id}/move",
    operation_id="deals_move",
    response_model=DealRead,
    responses=problems(*AUTHENTICATED, 404, 409, 412),
    summary="Move a deal to another stage (a won or lost stage closes it)",
    description="Records the stage history; emits `deal.stage_changed`, and `deal.won` or `deal.lost` on closing.",
)
async def move_deal(
    session: SessionDep, principal: Writer, deal_id: uuid.UUID, body: DealMove, version: ExpectedVersionDep
) -> Response:
    deal = await deals.move_deal(
        session, principal, deal_id, stage_id=body.stage_id, lost_reason=body.lost_reason, expected_version=version
    )
    return _reply(deal)


@router.delete(
    "/{deal_id}",
    operation_id="deals_archive",
    response_model=DealRead,
    responses=problems(*AUTHENTICATED, 404, 409, 412),
    summary="Archive a deal (restorable)",
)
async def archive_deal(
    session: SessionDep, principal: Writer, deal_id: uuid.UUID, version: ExpectedVersionDep
) -> Response:
    return _reply(await deals.archive_deal(session, principal, deal_id, expected_version=version))


@router.post(
    "/{deal_id}/restore",
    operation_id="deals_restore",
    response_model=DealRead,
    responses=problems(*AUTHENTICATED, 404, 409, 412),
)
async def restore_deal(
    session: SessionDep, principal: Writer, deal_id: uuid.UUID, version: ExpectedVersionDep
) -> Response:
    return _reply(await deals.restore_deal(session, principal, deal_id, expected_version=version))


@router.get(
    "/{deal_id}/stage-history",
    operation_id="deals_stage_history",
    response_model=StageVisitPage,
    responses=problems(*AUTHENTICATED, 404),
    summary="The stages the deal has been in, first to last, with entry and exit times",
)
async def deal_stage_history(
    session: SessionDep,
    principal: Reader,
    deal_id: uuid.UUID,
    cursor: CursorDep = None,
    limit: LimitDep = DEFAULT_LIMIT,
) -> StageVisitPage:
    page = await deals.stage_history(session, principal, deal_id, cursor=cursor, limit=limit)
    now = datetime.now(UTC)
    return StageVisitPage(
        items=[
            StageVisitRead(
                pipeline_id=visit.pipeline_id,
                stage_id=visit.stage_id,
                entered_at=visit.entered_at,
                exited_at=visit.exited_at,
                days=round(((visit.exited_at or now) - visit.entered_at).total_seconds() / 86400, 4),
            )
            for visit in page.items
        ],
        next_cursor=page.next_cursor,
    )


@router.get(
    "/{deal_id}/history",
    operation_id="deals_history",
    response_model=AuditEntryPage,
    responses=problems(*AUTHENTICATED, 404),
)
async def get_deal_history(
    session: SessionDep,
    principal: Reader,
    deal_id: uuid.UUID,
    cursor: CursorDep = None,
    limit: LimitDep = DEFAULT_LIMIT,
) -> AuditEntryPage:
    page = await deals.deal_history(session, principal, deal_id, cursor=cursor, limit=limit)
    return AuditEntryPage(items=[AuditEntryRead.model_validate(e) for e in page.items], next_cursor=page.next_cursor)
