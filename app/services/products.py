"""Products: the catalogue deal line items (and later orders) are priced from."""

from __future__ import annotations

import uuid

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core import audit
from app.core.enums import AuditAction
from app.core.pagination import Keyset, Page, SortKey, ValueKind
from app.core.principal import Principal
from app.core.repository import TenantRepository, check_version
from app.models.organization import Organization
from app.models.product import Product
from app.schemas.product import ProductCreate, ProductUpdate


def _products(session: AsyncSession, principal: Principal) -> TenantRepository[Product]:
    return TenantRepository(Product, session, principal, label="product")


def _like(term: str) -> str:
    return "%" + term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


async def create_product(session: AsyncSession, principal: Principal, *, data: ProductCreate) -> Product:
    currency = data.currency or await session.scalar(
        select(Organization.currency).where(Organization.id == principal.organization_id)
    )
    product = Product(organization_id=principal.organization_id, **data.model_dump(exclude={"currency"}))
    product.currency = currency or "CNY"
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
    product = await _products(session, principal).get(product_id, for_update=True)
    check_version(product.version, expected_version)
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
        pattern = _like(q)
        statement = statement.where(
            or_(Product.sku.ilike(pattern, escape="\\"), Product.name.ilike(pattern, escape="\\"))
        )
    keyset = Keyset.of([SortKey("sku", Product.__table__.c.sku, ValueKind.text, nullable=False)], Product.id)
    return await repository.page(statement, keyset, cursor=cursor, limit=limit)
