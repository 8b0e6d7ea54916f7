"""Contracts, their per-organisation numbering, and the templates their documents are rendered from."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import (
    CheckConstraint,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    Numeric,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.core.enums import ContractStatus
from app.models.base import Base, TenantMixin, TimestampMixin, VersionedMixin, str_enum


class ContractTemplate(TenantMixin, TimestampMixin, VersionedMixin, Base):
    """A Jinja2 HTML template, rendered in a sandbox with autoescaping on."""

    __tablename__ = "contract_templates"
    __table_args__ = (UniqueConstraint("organization_id", "name"),)

    name: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)


class ContractNumberCounter(Base):
    """The last contract number given out per organisation and year. Incremented in the
    transaction that inserts the contract, so a number is used exactly when that commits."""

    __tablename__ = "contract_number_counters"

    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True
    )
    year: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    last: Mapped[int] = mapped_column(Integer)


class Contract(TenantMixin, TimestampMixin, VersionedMixin, Base):
    __tablename__ = "contracts"
    __table_args__ = (
        ForeignKeyConstraint(["organization_id", "company_id"], ["companies.organization_id", "companies.id"]),
        ForeignKeyConstraint(["organization_id", "deal_id"], ["deals.organization_id", "deals.id"]),
        ForeignKeyConstraint(["organization_id", "owner_id"], ["users.organization_id", "users.id"]),
        ForeignKeyConstraint(
            ["organization_id", "template_id"], ["contract_templates.organization_id", "contract_templates.id"]
        ),
        UniqueConstraint("organization_id", "number"),
        CheckConstraint("end_date >= start_date", name="ends_after_start"),
        CheckConstraint("value >= 0", name="value_not_negative"),
        CheckConstraint("renewal_notice_days BETWEEN 0 AND 365", name="renewal_notice_range"),
        Index("ix_contracts_organization_id_status_id", "organization_id", "status", "id"),
        Index("ix_contracts_organization_id_company_id", "organization_id", "company_id"),
        Index("ix_contracts_organization_id_deal_id", "organization_id", "deal_id"),
        Index("ix_contracts_organization_id_owner_id_id", "organization_id", "owner_id", "id"),
        # What the daily jobs scan, across organisations: active contracts by end date.
        Index("ix_contracts_active_end_date", "end_date", postgresql_where=text("status = 'active'")),
    )

    number: Mapped[str] = mapped_column(String(20))
    title: Mapped[str] = mapped_column(String(300))
    company_id: Mapped[uuid.UUID]
    deal_id: Mapped[uuid.UUID | None] = mapped_column(default=None)
    template_id: Mapped[uuid.UUID | None] = mapped_column(default=None)
    # Whose contract it is: the organisation's record visibility restricts sales reps by it.
    owner_id: Mapped[uuid.UUID | None] = mapped_column(default=None)
    status: Mapped[ContractStatus] = mapped_column(
        str_enum(ContractStatus, "contract_status"), default=ContractStatus.draft
    )
    value: Mapped[Decimal] = mapped_column(Numeric(18, 2))
    currency: Mapped[str] = mapped_column(String(3))
    start_date: Mapped[date]
    end_date: Mapped[date]
    renewal_notice_days: Mapped[int] = mapped_column(SmallInteger, default=30)
    # Set by the one run of the reminder job that claimed the contract: the reminder goes out once.
    renewal_notified_at: Mapped[datetime | None] = mapped_column(default=None)
    signed_at: Mapped[datetime | None] = mapped_column(default=None)
    ended_at: Mapped[datetime | None] = mapped_column(default=None)
    # Large: read only by the document endpoint.
    document_html: Mapped[str | None] = mapped_column(Text, default=None, deferred=True)
    document_rendered_at: Mapped[datetime | None] = mapped_column(default=None)
