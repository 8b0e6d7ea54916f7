"""Lead scoring jobs: rescore an organisation after its rules changed; a sweep finds stale ones
(a lost job, a rule changed during a run); a daily pass lets behaviour points decay."""

from __future__ import annotations

import uuid
from typing import Any

from app.services import lifecycle, scoring

# Above the rescore's own statement timeout, so the statement fails cleanly before arq gives up.
RESCORE_JOB_TIMEOUT_SECONDS = scoring.RESCORE_TIMEOUT_SECONDS + 60


async def _rescore(ctx: dict[str, Any], organization_id: uuid.UUID) -> bool:
    """Every score recomputed, then the contacts they qualify moved along the lifecycle."""
    if not await scoring.rescore_organization(ctx["sessions"], organization_id):
        return False
    await lifecycle.qualify_by_score(ctx["sessions"], organization_id)
    return True


async def rescore_organization(ctx: dict[str, Any], organization_id: str) -> bool:
    return await _rescore(ctx, uuid.UUID(organization_id))


async def sweep_rescores(ctx: dict[str, Any]) -> int:
    stale = await scoring.stale_organizations(ctx["sessions"])
    for organization_id in stale:
        await _rescore(ctx, organization_id)
    return len(stale)


async def decay_scores(ctx: dict[str, Any]) -> int:
    return len(await scoring.mark_decaying_stale(ctx["sessions"]))
