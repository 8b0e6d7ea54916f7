"""Export jobs: write one export's file; a sweep re-runs lost ones (gives up old ones) and deletes expired files."""

from __future__ import annotations

import uuid
from typing import Any

from app.services import exports


async def run_export(ctx: dict[str, Any], organization_id: str, export_id: str) -> str:
    return await exports.run_export(ctx["sessions"], uuid.UUID(organization_id), uuid.UUID(export_id))


async def sweep_exports(ctx: dict[str, Any]) -> int:
    lost = await exports.sweep(ctx["sessions"])
    for organization_id, export_id in lost:
        await exports.run_export(ctx["sessions"], organization_id, export_id)
    return len(lost)
