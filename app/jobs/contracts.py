"""Contract cron jobs: renewal reminders and expiry. Both claim rows with conditional UPDATEs,
so a run on two workers at once (arq #196) sends each reminder and expires each contract once."""

from __future__ import annotations

from typing import Any

from app.models.base import utcnow
from app.services import contracts


async def remind_contract_renewals(ctx: dict[str, Any]) -> int:
    async with ctx["sessions"]() as session, session.begin():
        return len(await contracts.claim_renewals_due(session, today=utcnow().date()))


async def expire_contracts(ctx: dict[str, Any]) -> int:
    async with ctx["sessions"]() as session, session.begin():
        return len(await contracts.expire_ended(session, today=utcnow().date()))
