"""Per-organisation definitions of typed custom fields; values live in each record's JSONB."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Index, String, Text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.core.enums import CustomFieldEntity, CustomFieldType
from app.models.base import Base, TenantMixin, TimestampMixin, VersionedMixin, str_enum


class CustomFieldDefinition(TenantMixin, TimestampMixin, VersionedMixin, Base):
    __tablename__ = "custom_field_definitions"
    __table_args__ = (
        Index(
            "uq_custom_field_definitions_organization_id_entity_key",
            "organization_id",
            "entity",
            "key",
            unique=True,
        ),
    )

    entity: Mapped[CustomFieldEntity] = mapped_column(str_enum(CustomFieldEntity, "custom_field_entity"))
    key: Mapped[str] = mapped_column(String(64))
    label: Mapped[str] = mapped_column(String(200))
    type: Mapped[CustomFieldType] = mapped_column(str_enum(CustomFieldType, "custom_field_type"))
    options: Mapped[list[Any]] = mapped_column(JSONB, default=list, server_default="[]")
    required: Mapped[bool] = mapped_column(default=False, server_default="false")
    description: Mapped[str | None] = mapped_column(Text, default=None)
