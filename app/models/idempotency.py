"""Stored first replies to POSTs sent with an `Idempotency-Key` (DESIGN.md §4)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Index, LargeBinary, SmallInteger, String
from sqlalchemy.orm import Mapped, mapped_column

from app.core.ids import new_id
from app.models.base import Base


class IdempotencyRecord(Base):
    """Keys are scoped to the caller (`user:<id>`, `api_key:<id>`, or `anonymous`)."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (Index("uq_idempotency_keys_scope_key", "scope", "key", unique=True),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    organization_id: Mapped[uuid.UUID | None]
    scope: Mapped[str] = mapped_column(String(80))
    key: Mapped[str] = mapped_column(String(255))
    fingerprint: Mapped[bytes] = mapped_column(LargeBinary(32))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime] = mapped_column(index=True)
    response_status: Mapped[int | None] = mapped_column(SmallInteger, default=None)
    response_headers: Mapped[dict[str, Any] | None] = mapped_column(default=None)
    response_body: Mapped[bytes | None] = mapped_column(LargeBinary, default=None)
