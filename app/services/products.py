"""Products: the catalogue deal line items (and later orders) are priced from."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from decimal import Decimal

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core import audit, text_search
from app.core.enums import AuditAction
from app.core.errors import FieldError, ValidationFailed
from app.core.pagination import Keyset, Page, SortKey, ValueKind
from app.core.principal import Principal
from app.core.repository import TenantRepository
from app.models.product import Product
from app.schemas.deal import LineItemCreate
from app.schemas.product import ProductCreate, ProductUpdate
from app.services import organizations


def _products(session: AsyncSession, principal: Principal) -> TenantRepository[Product]:
    return TenantRepository(Product, session, principal, label="product")


async def create_product(session: AsyncSession, principal: Principal, *, data: ProductCreate) -> Product:
    currency = data.currency or await organizations.default_currency(session, principal.organization_id)
    product = Product(
        organization_id=principal.organization_id, **data.model_dump(exclude={"currency"}), currency=currency
    )
    session.add(product)
    await session.flush()
    audit.record(
        session,
        principal,
        action=AuditAction.create,
        entity_type="product",
        entity_id=product.id,
        changes=audit.creation(audit.snapshot(product)),
    )
    return product


async def get_product(session: AsyncSession, principal: Principal, product_id: uuid.UUID) -> Product:
    return await _products(session, principal).get(product_id)


async def update_product(
    session: AsyncSession,
    principal: Principal,
    product_id: uuid.UUID,
    *,
    data: ProductUpdate,
    expected_version: int | None,
) -> Product:
    product = await _products(session, principal).locked(product_id, expected_version=expected_version)
    before = audit.snapshot(product)
    for name, value in data.changes().items():
        if getattr(product, name) != value:
            setattr(product, name, value)
    if delta := audit.diff(before, audit.snapshot(product)):
        await session.flush()
        audit.record(
            session, principal, action=AuditAction.update, entity_type="product", entity_id=product.id, changes=delta
        )
    return product


async def find_products(
    session: AsyncSession,
    principal: Principal,
    *,
    q: str | None,
    active: bool | None,
    cursor: str | None,
    limit: int,
) -> Page[Product]:
    """Products by SKU (a catalogue reads in SKU order); `q` matches a part of the SKU or name."""
    repository = _products(session, principal)
    statement = repository.scoped()
    if active is not None:
        statement = statement.where(Product.active.is_(active))
    if q:
        pattern = text_search.like_pattern(q)
        statement = statement.where(
            or_(Product.sku.ilike(pattern, escape="\\"), Product.name.ilike(pattern, escape="\\"))
        )
    keyset = Keyset.of([SortKey("sku", Product.__table__.c.sku, ValueKind.text, nullable=False)], Product.id)
    return await repository.page(statement, keyset, cursor=cursor, limit=limit)


async def line_prices(
    session: AsyncSession, principal: Principal, items: Sequence[LineItemCreate], *, currency: str, priced: str
) -> list[tuple[str, Decimal]]:
    """Each line's name and unit price: as sent, or its product's (an active one of the
    organisation; a price in another currency than the `priced` record's must be sent)."""
    product_ids = {item.product_id for item in items if item.product_id is not None}
    statement = select(Product).where(Product.organization_id == principal.organization_id, Product.id.in_(product_ids))
    products = {product.id: product for product in await session.scalars(statement)} if product_ids else {}
    prices: list[tuple[str, Decimal]] = []
    for position, item in enumerate(items):
        loc = ("body", "line_items", position)
        name, unit_price = item.name, item.unit_price
        if item.product_id is not None:
            product = products.get(item.product_id)
            if product is None or not product.active:
                raise ValidationFailed(FieldError((*loc, "product_id"), f"no active product with id {item.product_id}"))
            if unit_price is None and product.currency != currency:
                raise ValidationFailed(
                    FieldError(
                        (*loc, "unit_price"),
                        f"the product is priced in {product.currency}, the {priced} in {currency}: give a unit_price",
                    )
                )
            name = name or product.name
            unit_price = product.price if unit_price is None else unit_price
        assert name is not None and unit_price is not None  # LineItemCreate requires them without a product
        prices.append((name, unit_price))
    return prices
