"""Contacts (people), the centre of the CRM."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import ForeignKeyConstraint, Index, String, Text, select, text
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, column_property, mapped_column

from app.core.enums import ContactSource, LifecycleStage
from app.models.base import (
    ArchivableMixin,
    Base,
    TenantMixin,
    TimestampMixin,
    VersionedMixin,
    str_enum,
)
from app.models.contact_point import AddressMixin
from app.models.scoring import LeadScore


class Contact(TenantMixin, AddressMixin, TimestampMixin, ArchivableMixin, VersionedMixin, Base):
    __tablename__ = "contacts"
    __table_args__ = (
        # Set on a record merged into another; the composite key keeps it inside the organisation.
        ForeignKeyConstraint(["organization_id", "merged_into_id"], ["contacts.organization_id", "contacts.id"]),
        ForeignKeyConstraint(
            ["organization_id", "company_id"],
            ["companies.organization_id", "companies.id"],
        ),
        ForeignKeyConstraint(["organization_id", "owner_id"], ["users.organization_id", "users.id"]),
        Index(
            "uq_contacts_organization_id_external_id",
            "organization_id",
            "external_id",
            unique=True,
            postgresql_where=text("external_id IS NOT NULL"),
        ),
        Index("ix_contacts_organization_id_email", "organization_id", "email"),
        Index("ix_contacts_organization_id_phone", "organization_id", "phone"),
        Index("ix_contacts_organization_id_company_id", "organization_id", "company_id"),
        Index(
            "ix_contacts_organization_id_owner_id_id",
            "organization_id",
            "owner_id",
            "id",
        ),
        Index(
            "ix_contacts_organization_id_updated_at_id",
            "organization_id",
            "updated_at",
            "id",
        ),
        Index("ix_contacts_search_grams", "search_grams", postgresql_using="gin"),
        Index("ix_contacts_tags", "tags", postgresql_using="gin"),
        Index(
            "ix_contacts_custom_fields",
            "custom_fields",
            postgresql_using="gin",
            postgresql_ops={"custom_fields": "jsonb_path_ops"},
        ),
    )

    first_name: Mapped[str | None] = mapped_column(String(100), default=None)
    last_name: Mapped[str | None] = mapped_column(String(100), default=None)
    title: Mapped[str | None] = mapped_column(String(200), default=None)
    email: Mapped[str | None] = mapped_column(String(320), default=None)
    phone: Mapped[str | None] = mapped_column(String(32), default=None)
    additional_emails: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, default=list, server_default="[]")
    additional_phones: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, default=list, server_default="[]")
    company_id: Mapped[uuid.UUID | None] = mapped_column(default=None)
    source: Mapped[ContactSource] = mapped_column(str_enum(ContactSource, "contact_source"))
    lifecycle_stage: Mapped[LifecycleStage] = mapped_column(
        str_enum(LifecycleStage, "lifecycle_stage"), default=LifecycleStage.lead
    )
    owner_id: Mapped[uuid.UUID | None] = mapped_column(default=None)
    tags: Mapped[list[str]] = mapped_column(ARRAY(Text), default=list, server_default="{}")
    external_id: Mapped[str | None] = mapped_column(String(200), default=None)
    custom_fields: Mapped[dict[str, Any]] = mapped_column(default=dict, server_default="{}")
    email_opt_in: Mapped[bool] = mapped_column(default=False, server_default="false")
    email_opt_in_at: Mapped[datetime | None] = mapped_column(default=None)
    email_opt_in_source: Mapped[str | None] = mapped_column(String(100), default=None)

    # Normalised text behind `?q=`: the contact's own names, e-mails and phones, and its
    # company's name (kept apart so a company rename is one UPDATE).
    # Deferred: only searches use them, and no read needs to carry them.
    search_text: Mapped[str] = mapped_column(Text, default="", server_default="", deferred=True)
    company_search_text: Mapped[str] = mapped_column(Text, default="", server_default="", deferred=True)
    # Filled in by a trigger from the text above unless the writer gives them (see text_search).
    search_grams: Mapped[list[str]] = mapped_column(ARRAY(Text), deferred=True)
    # Set by an erase (GDPR): the personal fields are gone for good, the row stays for aggregates.
    erased_at: Mapped[datetime | None] = mapped_column(default=None)
    merged_into_id: Mapped[uuid.UUID | None] = mapped_column(default=None)

    if TYPE_CHECKING:
        # Mapped below, from lead_scores (see _score_column).
        lead_score: Mapped[int | None]
        lead_grade: Mapped[str | None]


def _score_column(column: str, name: str) -> Any:
    """The contact's lead score or grade (kept in lead_scores), read with the contact. Not expired
    by a flush: scoring sets the new values on the object in the same transaction."""
    stored = LeadScore.__table__.c
    return column_property(
        select(stored[column])
        .where(stored.organization_id == Contact.organization_id, stored.contact_id == Contact.id)
        .correlate_except(LeadScore)
        .scalar_subquery()
        .label(name),
        expire_on_flush=False,
    )


Contact.lead_score = _score_column("score", "lead_score")
Contact.lead_grade = _score_column("grade", "lead_grade")
