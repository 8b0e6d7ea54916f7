"""Identifiers: UUIDv7, time-ordered, made by the application (DESIGN.md §3)."""

from __future__ import annotations

import uuid

from uuid_utils import compat


def new_id() -> uuid.UUID:
    return compat.uuid7()
