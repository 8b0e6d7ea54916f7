"""/api/v1/products"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Response

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
from app.schemas.product import ProductCreate, ProductPage, ProductRead, ProductUpdate
from app.services import products

router = APIRouter(prefix=API_PREFIX + "/products", tags=["products"], route_class=ApiRoute)
Reader = Annotated[Principal, require(Scope.products_read)]
Writer = Annotated[Principal, require(Scope.products_write)]


@router.get("", operation_id="products_list", response_model=ProductPage, responses=problems(*AUTHENTICATED))
async def list_products(
    session: SessionDep,
    principal: Reader,
    q: Annotated[str | None, Query(max_length=200, description="Part of the SKU or name")] = None,
    active: bool | None = None,
    cursor: CursorDep = None,
    limit: LimitDep = DEFAULT_LIMIT,
) -> ProductPage:
    """Products in SKU order."""
    page = await products.find_products(session, principal, q=q, active=active, cursor=cursor, limit=limit)
    return ProductPage(items=[ProductRead.model_validate(p) for p in page.items], next_cursor=page.next_cursor)


@router.post(
    "",
    operation_id="products_create",
    status_code=201,
    response_model=ProductRead,
    responses=problems(*AUTHENTICATED, 409),
)
async def create_product(session: SessionDep, principal: Writer, body: ProductCreate) -> Response:
    product = await products.create_product(session, principal, data=body)
    return record_reply(
        ProductRead.model_validate(product), status_code=201, location=f"{API_PREFIX}/products/{product.id}"
    )


@router.get(
    "/{product_id}", operation_id="products_get", response_model=ProductRead, responses=problems(*AUTHENTICATED, 404)
)
async def get_product(session: SessionDep, principal: Reader, product_id: uuid.UUID) -> Response:
    return record_reply(ProductRead.model_validate(await products.get_product(session, principal, product_id)))


@router.patch(
    "/{product_id}",
    operation_id="products_update",
    response_model=ProductRead,
    responses=problems(*AUTHENTICATED, 404, 409, 412),
    summary="Change a product; `active: false` takes it off sale (lines already priced keep their prices)",
)
async def update_product(
    session: SessionDep, principal: Writer, product_id: uuid.UUID, body: ProductUpdate, version: ExpectedVersionDep
) -> Response:
    product = await products.update_product(session, principal, product_id, data=body, expected_version=version)
    return record_reply(ProductRead.model_validate(product))
