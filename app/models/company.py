"""Companies (accounts)."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import ForeignKeyConstraint, Index, String, Text, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column

from app.core.enums import CompanySize
from app.models.base import (
    ArchivableMixin,
    Base,
    TenantMixin,
    TimestampMixin,
    VersionedMixin,
    str_enum,
)
from app.models.contact_point import AddressMixin


class Company(TenantMixin, AddressMixin, TimestampMixin, ArchivableMixin, VersionedMixin, Base):
    __tablename__ = "companies"
    __table_args__ = (
        # Set on a record merged into another; the composite key keeps it inside the organisation.
        ForeignKeyConstraint(["organization_id", "merged_into_id"], ["companies.organization_id", "companies.id"]),
        ForeignKeyConstraint(["organization_id", "owner_id"], ["users.organization_id", "users.id"]),
        Index(
            "uq_companies_organization_id_external_id",
            "organization_id",
            "external_id",
            unique=True,
            postgresql_where=text("external_id IS NOT NULL"),
        ),
        Index("ix_companies_organization_id_name_id", "organization_id", "name", "id"),
        Index("ix_companies_organization_id_domain", "organization_id", "domain"),
        Index(
            "ix_companies_organization_id_owner_id_id",
            "organization_id",
            "owner_id",
            "id",
        ),
        Index(
            "ix_companies_organization_id_updated_at_id",
            "organization_id",
            "updated_at",
            "id",
        ),
        Index("ix_companies_search_grams", "search_grams", postgresql_using="gin"),
        Index("ix_companies_tags", "tags", postgresql_using="gin"),
        Index(
            "ix_companies_custom_fields",
            "custom_fields",
            postgresql_using="gin",
            postgresql_ops={"custom_fields": "jsonb_path_ops"},
        ),
    )

    name: Mapped[str] = mapped_column(String(300))
    domain: Mapped[str | None] = mapped_column(String(253), default=None)
    industry: Mapped[str | None] = mapped_column(String(100), default=None)
    size: Mapped[CompanySize | None] = mapped_column(str_enum(CompanySize, "company_size"), default=None)
    phone: Mapped[str | None] = mapped_column(String(32), default=None)
    owner_id: Mapped[uuid.UUID | None] = mapped_column(default=None)
    tags: Mapped[list[str]] = mapped_column(ARRAY(Text), default=list, server_default="{}")
    external_id: Mapped[str | None] = mapped_column(String(200), default=None)
    custom_fields: Mapped[dict[str, Any]] = mapped_column(default=dict, server_default="{}")

    # Normalised text behind `?q=`. Deferred:
    # only searches use them, and no read needs to carry them.
    search_text: Mapped[str] = mapped_column(Text, default="", server_default="", deferred=True)
    # Filled in by a trigger from the text above unless the writer gives them (see text_search).
    search_grams: Mapped[list[str]] = mapped_column(ARRAY(Text), deferred=True)
    merged_into_id: Mapped[uuid.UUID | None] = mapped_column(default=None)
