"""Import jobs: write one import's rows; a sweep resumes imports whose run was lost."""

from __future__ import annotations

import uuid
from typing import Any

import structlog

from app.services import imports

log = structlog.get_logger(__name__)


async def run_import(ctx: dict[str, Any], organization_id: str, import_id: str) -> str:
    return await imports.run_import(ctx["sessions"], uuid.UUID(organization_id), uuid.UUID(import_id))


async def sweep_imports(ctx: dict[str, Any]) -> int:
    lost = await imports.sweep(ctx["sessions"])
    for organization_id, import_id in lost:
        try:
            await imports.run_import(ctx["sessions"], organization_id, import_id)
        except Exception:
            # One import whose run breaks (it stays running, and is given up after MAX_RUNS runs)
            # must not keep the others waiting behind it on every sweep.
            log.exception("import_run_failed", organization_id=str(organization_id), import_id=str(import_id))
    return len(lost)
