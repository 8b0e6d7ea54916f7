"""Columns shared by records that have a postal address."""

from __future__ import annotations

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column


class AddressMixin:
    address_line1: Mapped[str | None] = mapped_column(String(300), default=None)
    address_line2: Mapped[str | None] = mapped_column(String(300), default=None)
    city: Mapped[str | None] = mapped_column(String(100), default=None)
    region: Mapped[str | None] = mapped_column(String(100), default=None)
    postal_code: Mapped[str | None] = mapped_column(String(20), default=None)
    country: Mapped[str | None] = mapped_column(String(2), default=None)
