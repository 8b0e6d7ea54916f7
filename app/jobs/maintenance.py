"""Periodic clean-up: expired idempotency keys and refresh tokens."""

from __future__ import annotations

from typing import Any

from app.core import idempotency
from app.services import auth


async def purge_expired_idempotency_keys(ctx: dict[str, Any]) -> int:
    async with ctx["sessions"]() as session, session.begin():
        return await idempotency.purge_expired(session)


async def purge_expired_refresh_tokens(ctx: dict[str, Any]) -> int:
    async with ctx["sessions"]() as session, session.begin():
        return await auth.purge_expired_refresh_tokens(session)
