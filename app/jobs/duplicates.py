"""Duplicate scan jobs: run one stored scan; a sweep re-runs lost ones."""

from __future__ import annotations

import uuid
from typing import Any

from app.services import duplicates


async def run_duplicate_scan(ctx: dict[str, Any], organization_id: str, scan_id: str) -> str:
    return await duplicates.run_scan(ctx["sessions"], uuid.UUID(organization_id), uuid.UUID(scan_id))


async def sweep_duplicate_scans(ctx: dict[str, Any]) -> int:
    lost = await duplicates.sweep_scans(ctx["sessions"])
    for organization_id, scan_id in lost:
        await duplicates.run_scan(ctx["sessions"], organization_id, scan_id)
    return len(lost)
