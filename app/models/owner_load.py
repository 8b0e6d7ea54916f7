"""Open leads and open deals per owner: what least-loaded assignment compares.

Kept exact by statement-level triggers on `contacts` and `deals` (migration 0018), never written by
the application: every INSERT (COPY included), UPDATE and DELETE adds its net change per owner in
one aggregated upsert. A lead is a contact in lifecycle stage `lead`, not archived; an open deal
has status `open`, not archived; both counted for their `owner_id`.
"""

from __future__ import annotations

import uuid

from sqlalchemy import ForeignKey, ForeignKeyConstraint, Integer
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base


class OwnerLoad(Base):
    __tablename__ = "owner_loads"
    __table_args__ = (
        ForeignKeyConstraint(["organization_id", "user_id"], ["users.organization_id", "users.id"], ondelete="CASCADE"),
    )

    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    open_leads: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    open_deals: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
