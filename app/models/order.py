"""Orders: what a customer bought, priced line by line, and where the order stands."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal

from sqlalchemy import CheckConstraint, ForeignKeyConstraint, Index, Numeric, SmallInteger, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.core.enums import OrderStatus
from app.models.base import Base, TenantMixin, TimestampMixin, VersionedMixin, str_enum


class Order(TenantMixin, TimestampMixin, VersionedMixin, Base):
    __tablename__ = "orders"
    __table_args__ = (
        ForeignKeyConstraint(["organization_id", "contact_id"], ["contacts.organization_id", "contacts.id"]),
        ForeignKeyConstraint(["organization_id", "company_id"], ["companies.organization_id", "companies.id"]),
        ForeignKeyConstraint(["organization_id", "deal_id"], ["deals.organization_id", "deals.id"]),
        ForeignKeyConstraint(["organization_id", "owner_id"], ["users.organization_id", "users.id"]),
        CheckConstraint("contact_id IS NOT NULL OR company_id IS NOT NULL", name="has_customer"),
        CheckConstraint("subtotal >= 0 AND tax_total >= 0 AND total = subtotal + tax_total", name="totals"),
        Index("ix_orders_organization_id_status_id", "organization_id", "status", "id"),
        Index("ix_orders_organization_id_company_id", "organization_id", "company_id"),
        Index("ix_orders_organization_id_contact_id", "organization_id", "contact_id"),
        Index("ix_orders_organization_id_deal_id", "organization_id", "deal_id"),
        Index("ix_orders_organization_id_owner_id_id", "organization_id", "owner_id", "id"),
    )

    contact_id: Mapped[uuid.UUID | None] = mapped_column(default=None)
    company_id: Mapped[uuid.UUID | None] = mapped_column(default=None)
    deal_id: Mapped[uuid.UUID | None] = mapped_column(default=None)
    # Whose order it is: the organisation's record visibility restricts sales reps by it.
    owner_id: Mapped[uuid.UUID | None] = mapped_column(default=None)
    status: Mapped[OrderStatus] = mapped_column(str_enum(OrderStatus, "order_status"), default=OrderStatus.draft)
    currency: Mapped[str] = mapped_column(String(3))
    # Sums of the lines' rounded amounts, kept on the order so that reports need no join.
    subtotal: Mapped[Decimal] = mapped_column(Numeric(18, 2))
    tax_total: Mapped[Decimal] = mapped_column(Numeric(18, 2))
    total: Mapped[Decimal] = mapped_column(Numeric(18, 2))
    notes: Mapped[str | None] = mapped_column(Text, default=None)
    confirmed_at: Mapped[datetime | None] = mapped_column(default=None)
    fulfilled_at: Mapped[datetime | None] = mapped_column(default=None)
    paid_at: Mapped[datetime | None] = mapped_column(default=None)
    cancelled_at: Mapped[datetime | None] = mapped_column(default=None)

    line_items: Mapped[list[OrderLineItem]] = relationship(
        lazy="selectin", cascade="all, delete-orphan", order_by="OrderLineItem.position"
    )


class OrderLineItem(TenantMixin, Base):
    """A priced line: `net_amount` and `tax_amount` are computed by the server, each rounded to cents."""

    __tablename__ = "order_line_items"
    __table_args__ = (
        ForeignKeyConstraint(
            ["organization_id", "order_id"], ["orders.organization_id", "orders.id"], ondelete="CASCADE"
        ),
        ForeignKeyConstraint(["organization_id", "product_id"], ["products.organization_id", "products.id"]),
        Index("ix_order_line_items_order", "organization_id", "order_id", "position"),
        Index("ix_order_line_items_organization_id_product_id", "organization_id", "product_id"),
        CheckConstraint("quantity > 0", name="quantity_positive"),
        CheckConstraint("unit_price >= 0", name="unit_price_not_negative"),
        CheckConstraint("discount_percent BETWEEN 0 AND 100", name="discount_range"),
        CheckConstraint("tax_percent BETWEEN 0 AND 100", name="tax_range"),
    )

    order_id: Mapped[uuid.UUID]
    position: Mapped[int] = mapped_column(SmallInteger)
    product_id: Mapped[uuid.UUID | None] = mapped_column(default=None)
    name: Mapped[str] = mapped_column(String(300))
    quantity: Mapped[Decimal] = mapped_column(Numeric(18, 4))
    unit_price: Mapped[Decimal] = mapped_column(Numeric(18, 2))
    discount_percent: Mapped[Decimal] = mapped_column(Numeric(5, 2), default=Decimal(0))
    tax_percent: Mapped[Decimal] = mapped_column(Numeric(5, 2), default=Decimal(0))
    net_amount: Mapped[Decimal] = mapped_column(Numeric(18, 2))
    tax_amount: Mapped[Decimal] = mapped_column(Numeric(18, 2))
