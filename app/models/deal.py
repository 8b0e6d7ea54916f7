"""Deals (opportunities): what is being sold to whom, where it stands, and how it got there."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKeyConstraint, Index, Numeric, SmallInteger, String, Text, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.core.enums import ContactSource, StageKind
from app.models.base import ArchivableMixin, Base, TenantMixin, TimestampMixin, VersionedMixin, str_enum


class Deal(TenantMixin, TimestampMixin, ArchivableMixin, VersionedMixin, Base):
    __tablename__ = "deals"
    __table_args__ = (
        # Through the stage's (pipeline, id) key: a deal's stage always belongs to its pipeline.
        ForeignKeyConstraint(
            ["organization_id", "pipeline_id", "stage_id"],
            ["pipeline_stages.organization_id", "pipeline_stages.pipeline_id", "pipeline_stages.id"],
        ),
        ForeignKeyConstraint(["organization_id", "company_id"], ["companies.organization_id", "companies.id"]),
        ForeignKeyConstraint(["organization_id", "owner_id"], ["users.organization_id", "users.id"]),
        CheckConstraint("probability BETWEEN 0 AND 100", name="probability_range"),
        CheckConstraint("amount >= 0", name="amount_not_negative"),
        Index(
            "uq_deals_organization_id_external_id",
            "organization_id",
            "external_id",
            unique=True,
            postgresql_where=text("external_id IS NOT NULL"),
        ),
        Index("ix_deals_board", "organization_id", "pipeline_id", "stage_id", "id"),
        Index("ix_deals_organization_id_owner_id_id", "organization_id", "owner_id", "id"),
        Index("ix_deals_organization_id_company_id", "organization_id", "company_id"),
        Index("ix_deals_organization_id_updated_at_id", "organization_id", "updated_at", "id"),
        Index("ix_deals_forecast", "organization_id", "expected_close_date", postgresql_where=text("status = 'open'")),
        # The sales reports' covering indexes (migration 0014).
        Index(
            "ix_deals_report_open",
            "organization_id",
            "expected_close_date",
            postgresql_include=["pipeline_id", "owner_id", "currency", "amount", "probability"],
            postgresql_where=text("status = 'open' AND archived_at IS NULL"),
        ),
        Index(
            "ix_deals_report_closed",
            "organization_id",
            "closed_at",
            postgresql_include=["pipeline_id", "owner_id", "status", "currency", "amount", "created_at"],
            postgresql_where=text("closed_at IS NOT NULL AND archived_at IS NULL"),
        ),
        Index("ix_deals_archived", "organization_id", "id", postgresql_where=text("archived_at IS NOT NULL")),
        Index("ix_deals_search_grams", "search_grams", postgresql_using="gin"),
        Index("ix_deals_tags", "tags", postgresql_using="gin"),
        Index(
            "ix_deals_custom_fields",
            "custom_fields",
            postgresql_using="gin",
            postgresql_ops={"custom_fields": "jsonb_path_ops"},
        ),
    )

    name: Mapped[str] = mapped_column(String(300))
    pipeline_id: Mapped[uuid.UUID]
    stage_id: Mapped[uuid.UUID]
    company_id: Mapped[uuid.UUID | None] = mapped_column(default=None)
    amount: Mapped[Decimal | None] = mapped_column(Numeric(18, 2), default=None)
    currency: Mapped[str] = mapped_column(String(3))
    # Percent. The stage's unless the deal set its own (`probability_manual`); stored, so that a
    # forecast is one scan without a join.
    probability: Mapped[int] = mapped_column(SmallInteger)
    probability_manual: Mapped[bool] = mapped_column(default=False)
    expected_close_date: Mapped[date | None] = mapped_column(default=None)
    owner_id: Mapped[uuid.UUID | None] = mapped_column(default=None)
    source: Mapped[ContactSource | None] = mapped_column(str_enum(ContactSource, "deal_source"), default=None)
    # The stage's kind, kept on the deal: open deals are what boards and forecasts read.
    status: Mapped[StageKind] = mapped_column(str_enum(StageKind, "deal_status"), default=StageKind.open)
    stage_entered_at: Mapped[datetime]
    closed_at: Mapped[datetime | None] = mapped_column(default=None)
    lost_reason: Mapped[str | None] = mapped_column(String(500), default=None)
    tags: Mapped[list[str]] = mapped_column(ARRAY(Text), default=list, server_default="{}")
    external_id: Mapped[str | None] = mapped_column(String(200), default=None)
    custom_fields: Mapped[dict[str, Any]] = mapped_column(default=dict, server_default="{}")

    search_text: Mapped[str] = mapped_column(Text, default="", server_default="", deferred=True)
    # Filled in by a trigger from the text above unless the writer gives them (see text_search).
    search_grams: Mapped[list[str]] = mapped_column(ARRAY(Text), deferred=True)

    # Part of the deal as the API shows it: loaded with every deal (one query per page each).
    contacts: Mapped[list[DealContact]] = relationship(
        lazy="selectin", cascade="all, delete-orphan", order_by="DealContact.contact_id"
    )
    line_items: Mapped[list[DealLineItem]] = relationship(
        lazy="selectin", cascade="all, delete-orphan", order_by="DealLineItem.position"
    )


class DealContact(Base):
    """A contact's part in a deal (decision maker, champion…)."""

    __tablename__ = "deal_contacts"
    __table_args__ = (
        ForeignKeyConstraint(["organization_id", "deal_id"], ["deals.organization_id", "deals.id"], ondelete="CASCADE"),
        ForeignKeyConstraint(["organization_id", "contact_id"], ["contacts.organization_id", "contacts.id"]),
        Index("ix_deal_contacts_organization_id_contact_id", "organization_id", "contact_id"),
    )

    organization_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    deal_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    contact_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    role: Mapped[str | None] = mapped_column(String(100), default=None)


class DealLineItem(TenantMixin, Base):
    """A priced line: `amount` is computed by the server from quantity, unit price and discount."""

    __tablename__ = "deal_line_items"
    __table_args__ = (
        ForeignKeyConstraint(["organization_id", "deal_id"], ["deals.organization_id", "deals.id"], ondelete="CASCADE"),
        ForeignKeyConstraint(["organization_id", "product_id"], ["products.organization_id", "products.id"]),
        Index("ix_deal_line_items_deal", "organization_id", "deal_id", "position"),
        CheckConstraint("quantity > 0", name="quantity_positive"),
        CheckConstraint("unit_price >= 0", name="unit_price_not_negative"),
        CheckConstraint("discount_percent BETWEEN 0 AND 100", name="discount_range"),
    )

    deal_id: Mapped[uuid.UUID]
    position: Mapped[int] = mapped_column(SmallInteger)
    product_id: Mapped[uuid.UUID | None] = mapped_column(default=None)
    name: Mapped[str] = mapped_column(String(300))
    quantity: Mapped[Decimal] = mapped_column(Numeric(18, 4))
    unit_price: Mapped[Decimal] = mapped_column(Numeric(18, 2))
    discount_percent: Mapped[Decimal] = mapped_column(Numeric(5, 2), default=Decimal(0))
    amount: Mapped[Decimal] = mapped_column(Numeric(18, 2))


class DealStageVisit(TenantMixin, Base):
    """A deal's stay in one stage: entered, and exited once it moved on (open while it is there).
    Funnel conversion and cycle times are read from these."""

    __tablename__ = "deal_stage_history"
    __table_args__ = (
        ForeignKeyConstraint(["organization_id", "deal_id"], ["deals.organization_id", "deals.id"], ondelete="CASCADE"),
        ForeignKeyConstraint(
            ["organization_id", "pipeline_id", "stage_id"],
            ["pipeline_stages.organization_id", "pipeline_stages.pipeline_id", "pipeline_stages.id"],
        ),
        # Covering (migration 0019): a restricted caller's funnel reads its deals' visits from it alone.
        Index(
            "ix_deal_stage_history_deal",
            "organization_id",
            "deal_id",
            "entered_at",
            postgresql_include=["pipeline_id", "stage_id", "exited_at"],
        ),
        Index("ix_deal_stage_history_funnel", "organization_id", "pipeline_id", "entered_at", "stage_id"),
        Index(
            "ix_deal_stage_history_report",
            "organization_id",
            "pipeline_id",
            "entered_at",
            postgresql_include=["stage_id", "deal_id", "exited_at"],
        ),
    )

    deal_id: Mapped[uuid.UUID]
    pipeline_id: Mapped[uuid.UUID]
    stage_id: Mapped[uuid.UUID]
    entered_at: Mapped[datetime]
    exited_at: Mapped[datetime | None] = mapped_column(default=None)
