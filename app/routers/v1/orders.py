"""/api/v1/orders, and /api/v1/deals/{deal_id}/order (an order made from a won deal)"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Response

from app.core.enums import OrderStatus
from app.core.pagination import DEFAULT_LIMIT
from app.core.permissions import Scope
from app.core.principal import Principal
from app.routers.deps import (
    API_PREFIX,
    AUTHENTICATED,
    ApiRoute,
    CursorDep,
    ExpectedVersionDep,
    LimitDep,
    SessionDep,
    problems,
    record_reply,
    require,
)
from app.schemas.order import OrderCreate, OrderPage, OrderRead, OrderTransition, OrderUpdate
from app.services import orders

router = APIRouter(prefix=API_PREFIX, tags=["orders"], route_class=ApiRoute)
Reader = Annotated[Principal, require(Scope.orders_read)]
Writer = Annotated[Principal, require(Scope.orders_write)]


def _reply(order: Any, *, created: bool = False) -> Response:
    reply = OrderRead.model_validate(order)
    if created:
        return record_reply(reply, status_code=201, location=f"{API_PREFIX}/orders/{reply.id}")
    return record_reply(reply)


@router.get("/orders", operation_id="orders_list", response_model=OrderPage, responses=problems(*AUTHENTICATED))
async def list_orders(
    session: SessionDep,
    principal: Reader,
    status: OrderStatus | None = None,
    contact_id: uuid.UUID | None = None,
    company_id: uuid.UUID | None = None,
    deal_id: uuid.UUID | None = None,
    owner_id: uuid.UUID | None = None,
    cursor: CursorDep = None,
    limit: LimitDep = DEFAULT_LIMIT,
) -> OrderPage:
    """Orders, newest first: a sales rep under `own` or `team` visibility sees only theirs or their team's."""
    page = await orders.find_orders(
        session,
        principal,
        status=status,
        contact_id=contact_id,
        company_id=company_id,
        deal_id=deal_id,
        owner_id=owner_id,
        cursor=cursor,
        limit=limit,
    )
    return OrderPage(items=[OrderRead.model_validate(o) for o in page.items], next_cursor=page.next_cursor)


@router.post(
    "/orders",
    operation_id="orders_create",
    status_code=201,
    response_model=OrderRead,
    responses=problems(*AUTHENTICATED),
    summary="Create a draft order; the server prices its lines and totals",
)
async def create_order(session: SessionDep, principal: Writer, body: OrderCreate) -> Response:
    return _reply(await orders.create_order(session, principal, data=body), created=True)


@router.post(
    "/deals/{deal_id}/order",
    operation_id="orders_create_from_deal",
    status_code=201,
    response_model=OrderRead,
    responses=problems(*AUTHENTICATED, 404, 409),
    summary="Create a draft order from a won deal",
    description="Copies the deal's company, its first contact, its owner (the caller when it has none), its "
    "currency and its line items (untaxed).",
)
async def create_order_from_deal(session: SessionDep, principal: Writer, deal_id: uuid.UUID) -> Response:
    return _reply(await orders.create_order_from_deal(session, principal, deal_id), created=True)


@router.get(
    "/orders/{order_id}", operation_id="orders_get", response_model=OrderRead, responses=problems(*AUTHENTICATED, 404)
)
async def get_order(session: SessionDep, principal: Reader, order_id: uuid.UUID) -> Response:
    return _reply(await orders.get_order(session, principal, order_id))


@router.patch(
    "/orders/{order_id}",
    operation_id="orders_update",
    response_model=OrderRead,
    responses=problems(*AUTHENTICATED, 404, 409, 412),
    summary="Change an order; only `notes` and `owner_id` once it has left draft",
)
async def update_order(
    session: SessionDep, principal: Writer, order_id: uuid.UUID, body: OrderUpdate, version: ExpectedVersionDep
) -> Response:
    return _reply(await orders.update_order(session, principal, order_id, data=body, expected_version=version))


@router.post(
    "/orders/{order_id}/transition",
    operation_id="orders_transition",
    response_model=OrderRead,
    responses=problems(*AUTHENTICATED, 404, 409, 412),
    summary="Move an order to another status",
    description="draft → confirmed | cancelled; confirmed → fulfilled | cancelled; fulfilled → paid. "
    "Anything else is a 409. Emits `order.status_changed` and `order.<status>`.",
)
async def transition_order(
    session: SessionDep, principal: Writer, order_id: uuid.UUID, body: OrderTransition, version: ExpectedVersionDep
) -> Response:
    order = await orders.transition_order(session, principal, order_id, to=body.to, expected_version=version)
    return _reply(order)
