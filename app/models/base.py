"""Declarative base, constraint naming convention and the tenant-table mixins (DESIGN.md §3)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, ClassVar

from sqlalchemy import DateTime, Enum, ForeignKey, Integer, MetaData, Uuid
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, declared_attr, mapped_column

from app.core.ids import new_id

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


def str_enum(enum_cls: type[StrEnum], name: str) -> Enum:
    """A text column with a CHECK constraint: new values are a constraint swap, not `ALTER TYPE`."""
    return Enum(
        enum_cls,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=max(len(m.value) for m in enum_cls),
        values_callable=lambda e: [m.value for m in e],
    )


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: DateTime(timezone=True),
        uuid.UUID: Uuid(),
        dict[str, Any]: JSONB,
    }


class TenantMixin:
    """Primary key `(organization_id, id)`: every tenant row is addressed through its organisation."""

    @declared_attr
    def organization_id(cls) -> Mapped[uuid.UUID]:
        return mapped_column(
            ForeignKey("organizations.id", ondelete="CASCADE"),
            primary_key=True,
            sort_order=-20,
        )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id, sort_order=-10)


class TimestampMixin:
    created_at: Mapped[datetime] = mapped_column(default=utcnow, sort_order=10)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow, sort_order=10)


class VersionedMixin:
    """`version` backs ETags; SQLAlchemy adds `WHERE version = :seen` to every UPDATE."""

    version: Mapped[int] = mapped_column(Integer, nullable=False, default=1, sort_order=10)

    @declared_attr.directive
    def __mapper_args__(cls) -> dict[str, Any]:
        return {"version_id_col": cls.__table__.c.version}  # type: ignore[attr-defined]


class ArchivableMixin:
    archived_at: Mapped[datetime | None] = mapped_column(default=None, sort_order=10)
