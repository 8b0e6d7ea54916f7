"""Orders: what a customer bought, priced by the server, and its status.

Every status change goes through `transition_order` and is checked against `TRANSITIONS`, the
one table of what may follow what. A fulfilled order cannot be cancelled: the goods are out, and
undoing that is a return or a credit note, not a status. Line amounts are Decimals: the net is
quantity × unit price × (1 − discount), the tax is the net × the tax rate, each rounded half up
to cents on its own; the order's totals are sums of those rounded amounts, so they always add up
to what the lines show.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Final

from sqlalchemy.ext.asyncio import AsyncSession

from app.core import audit, events
from app.core.enums import AuditAction, OrderStatus, StageKind
from app.core.errors import Conflict, FieldError, ValidationFailed
from app.core.pagination import Keyset, Page
from app.core.principal import Principal
from app.core.repository import TenantRepository
from app.models.base import utcnow
from app.models.company import Company
from app.models.contact import Contact
from app.models.deal import Deal
from app.models.order import Order, OrderLineItem
from app.schemas.order import OrderCreate, OrderLineCreate, OrderRead, OrderUpdate
from app.services import lifecycle, organizations, products, records
from app.services.deals import line_amount

CENT: Final = Decimal("0.01")
_QUANTITY_SCALE: Final = Decimal("0.0001")
LABEL: Final = "order"
# What an order names by id, checked visible to the caller: (field, model, label).
_RELATED: Final[tuple[records.Related, ...]] = (
    ("contact_id", Contact, "contact"),
    ("company_id", Company, "company"),
    ("deal_id", Deal, "deal"),
)

TRANSITIONS: Final[dict[OrderStatus, frozenset[OrderStatus]]] = {
    OrderStatus.draft: frozenset({OrderStatus.confirmed, OrderStatus.cancelled}),
    OrderStatus.confirmed: frozenset({OrderStatus.fulfilled, OrderStatus.cancelled}),
    OrderStatus.fulfilled: frozenset({OrderStatus.paid}),
    OrderStatus.paid: frozenset(),
    OrderStatus.cancelled: frozenset(),
}
# The column that records when the order reached a status.
_REACHED_AT: Final = {
    OrderStatus.confirmed: "confirmed_at",
    OrderStatus.fulfilled: "fulfilled_at",
    OrderStatus.paid: "paid_at",
    OrderStatus.cancelled: "cancelled_at",
}
# Fields a PATCH may change once the order has left draft: who looks after it is not what was ordered.
_ALWAYS_EDITABLE: Final = frozenset({"notes", "owner_id"})


def _line_amounts(
    quantity: Decimal, unit_price: Decimal, discount_percent: Decimal, tax_percent: Decimal
) -> tuple[Decimal, Decimal]:
    """(net, tax) of one line, each rounded half up to cents."""
    net = line_amount(quantity, unit_price, discount_percent)
    tax = (net * tax_percent / Decimal(100)).quantize(CENT, rounding=ROUND_HALF_UP)
    return net, tax


def _orders(session: AsyncSession, principal: Principal) -> TenantRepository[Order]:
    return TenantRepository(Order, session, principal, label=LABEL)


def _snapshot(order: Order) -> audit.Snapshot:
    return audit.snapshot(order) | {
        "line_items": [
            audit.snapshot(item, exclude={"order_id", "position"}) | {"id": str(item.id)} for item in order.line_items
        ]
    }


def _emit(session: AsyncSession, principal: Principal, order: Order, name: str, changes: audit.Changes | None) -> None:
    records.emit_read_model_event(session, events.Actor.of(principal), LABEL, OrderRead, order, name, changes=changes)


async def _priced_lines(
    session: AsyncSession, principal: Principal, items: Sequence[OrderLineCreate | dict[str, Any]], *, currency: str
) -> list[OrderLineItem]:
    parsed = [OrderLineCreate.model_validate(item) for item in items]
    prices = await products.line_prices(session, principal, parsed, currency=currency, priced="order")
    lines = []
    for position, (item, (name, unit_price)) in enumerate(zip(parsed, prices, strict=True)):
        lines.append(
            _line(
                principal,
                position=position,
                product_id=item.product_id,
                name=name,
                quantity=item.quantity,
                unit_price=unit_price,
                discount_percent=item.discount_percent,
                tax_percent=item.tax_percent,
            )
        )
    return lines


def _line(
    principal: Principal,
    *,
    position: int,
    product_id: uuid.UUID | None,
    name: str,
    quantity: Decimal,
    unit_price: Decimal,
    discount_percent: Decimal,
    tax_percent: Decimal,
) -> OrderLineItem:
    net, tax = _line_amounts(quantity, unit_price, discount_percent, tax_percent)
    # At the columns' scales, so the reply to this request reads as every later read does.
    return OrderLineItem(
        organization_id=principal.organization_id,
        position=position,
        product_id=product_id,
        name=name,
        quantity=quantity.quantize(_QUANTITY_SCALE),
        unit_price=unit_price.quantize(CENT),
        discount_percent=discount_percent.quantize(CENT),
        tax_percent=tax_percent.quantize(CENT),
        net_amount=net,
        tax_amount=tax,
    )


def _total(order: Order) -> None:
    order.subtotal = sum((line.net_amount for line in order.line_items), Decimal("0.00"))
    order.tax_total = sum((line.tax_amount for line in order.line_items), Decimal("0.00"))
    order.total = order.subtotal + order.tax_total


async def _created(session: AsyncSession, principal: Principal, order: Order) -> Order:
    _total(order)
    session.add(order)
    await session.flush()
    audit.record(
        session,
        principal,
        action=AuditAction.create,
        entity_type=LABEL,
        entity_id=order.id,
        changes=audit.creation(_snapshot(order)),
    )
    _emit(session, principal, order, "created", None)
    return order


async def create_order(session: AsyncSession, principal: Principal, *, data: OrderCreate) -> Order:
    related = await records.related_records(session, principal, data.model_dump(), _RELATED)
    deal: Deal | None = related.get("deal_id")
    currency = data.currency or await organizations.default_currency(session, principal.organization_id)
    order = Order(
        organization_id=principal.organization_id,
        contact_id=data.contact_id,
        company_id=data.company_id,
        deal_id=data.deal_id,
        owner_id=await records.initial_owner(
            session,
            principal,
            sent="owner_id" in data.model_fields_set,
            owner_id=data.owner_id,
            inherited=deal.owner_id if deal is not None else None,
        ),
        currency=currency,
        notes=data.notes,
        line_items=await _priced_lines(session, principal, data.line_items, currency=currency),
    )
    return await _created(session, principal, order)


async def create_order_from_deal(session: AsyncSession, principal: Principal, deal_id: uuid.UUID) -> Order:
    """A draft order for a won deal: its company, its first contact (as the deal lists them), its
    owner (the caller's when it has none, as for a create naming the deal), its currency and its
    lines as they were priced on the deal (untaxed; set tax rates on the draft)."""
    deal = await TenantRepository(Deal, session, principal, label="deal").get(deal_id)
    if deal.archived_at is not None:
        raise Conflict("The deal is archived; restore it first")
    if deal.status is not StageKind.won:
        raise Conflict(f"Only a won deal becomes an order; this one is {deal.status.value}")
    contact_id = deal.contacts[0].contact_id if deal.contacts else None
    if deal.company_id is None and contact_id is None:
        raise Conflict("The deal has neither a company nor a contact to order for; add one to the deal")
    order = Order(
        organization_id=principal.organization_id,
        contact_id=contact_id,
        company_id=deal.company_id,
        deal_id=deal.id,
        owner_id=await records.initial_owner(session, principal, sent=False, owner_id=None, inherited=deal.owner_id),
        currency=deal.currency,
        line_items=[
            _line(
                principal,
                position=item.position,
                product_id=item.product_id,
                name=item.name,
                quantity=item.quantity,
                unit_price=item.unit_price,
                discount_percent=item.discount_percent,
                tax_percent=Decimal(0),
            )
            for item in deal.line_items
        ],
    )
    return await _created(session, principal, order)


async def get_order(session: AsyncSession, principal: Principal, order_id: uuid.UUID) -> Order:
    return await _orders(session, principal).get(order_id)


async def _announce_change(
    session: AsyncSession, principal: Principal, order: Order, *, before: audit.Snapshot, events_: Sequence[str]
) -> None:
    delta = audit.diff(before, _snapshot(order))
    if not delta:
        return
    # A change to the line items alone is still a new version of the order.
    order.updated_at = utcnow()
    await session.flush()
    audit.record(session, principal, action=AuditAction.update, entity_type=LABEL, entity_id=order.id, changes=delta)
    for name in events_:
        _emit(session, principal, order, name, delta)


async def update_order(
    session: AsyncSession,
    principal: Principal,
    order_id: uuid.UUID,
    *,
    data: OrderUpdate,
    expected_version: int | None,
) -> Order:
    order = await _orders(session, principal).locked(order_id, expected_version=expected_version)
    changes = data.changes()
    if order.status is not OrderStatus.draft and (frozen := sorted(set(changes) - _ALWAYS_EDITABLE)):
        raise Conflict(f"The order is {order.status.value}; {', '.join(frozen)} change only while it is a draft")
    # One UPDATE at the end: the lookups on the way must not flush half a change.
    with session.no_autoflush:
        before = _snapshot(order)
        customer = {key: changes.get(key, getattr(order, key)) for key in ("contact_id", "company_id")}
        if customer["contact_id"] is None and customer["company_id"] is None:
            raise ValidationFailed(FieldError(("body",), "an order needs a contact_id, a company_id or both"))
        await records.related_records(session, principal, changes, _RELATED)
        await records.check_new_owner(session, principal, changes, order.owner_id)
        if "line_items" in changes:
            currency = changes.get("currency", order.currency)
            order.line_items = await _priced_lines(session, principal, changes.pop("line_items"), currency=currency)
            _total(order)
        for name, value in changes.items():
            if getattr(order, name) != value:
                setattr(order, name, value)
    await _announce_change(session, principal, order, before=before, events_=["updated"])
    return order


async def transition_order(
    session: AsyncSession,
    principal: Principal,
    order_id: uuid.UUID,
    *,
    to: OrderStatus,
    expected_version: int | None,
) -> Order:
    """Moves the order to `to` if `TRANSITIONS` allows it; audited, and announced as
    `order.status_changed` and `order.<to>`."""
    order = await _orders(session, principal).locked(order_id, expected_version=expected_version)
    allowed = TRANSITIONS[order.status]
    if to not in allowed:
        listed = ", ".join(sorted(allowed)) or "none: it is final"
        raise Conflict(f"An order that is {order.status.value} cannot become {to.value} (allowed: {listed})")
    if to is OrderStatus.confirmed and not order.line_items:
        raise Conflict("An order without line items cannot be confirmed")
    before = _snapshot(order)
    order.status = to
    setattr(order, _REACHED_AT[to], utcnow())
    await _announce_change(session, principal, order, before=before, events_=["status_changed", to.value])
    if to is OrderStatus.paid:
        await lifecycle.after_order_paid(session, principal, order)
    return order


async def find_orders(
    session: AsyncSession,
    principal: Principal,
    *,
    status: OrderStatus | None = None,
    contact_id: uuid.UUID | None = None,
    company_id: uuid.UUID | None = None,
    deal_id: uuid.UUID | None = None,
    owner_id: uuid.UUID | None = None,
    cursor: str | None,
    limit: int,
) -> Page[Order]:
    """Orders the caller may see, newest first, filtered by status, contact, company, deal or
    owner when given."""
    repository = _orders(session, principal)
    statement = repository.scoped()
    for column, value in (
        (Order.status, status),
        (Order.contact_id, contact_id),
        (Order.company_id, company_id),
        (Order.deal_id, deal_id),
        (Order.owner_id, owner_id),
    ):
        if value is not None:
            statement = statement.where(column == value)
    return await repository.page(
        statement, Keyset.of([], Order.__table__.c.id, id_descending=True), cursor=cursor, limit=limit
    )
