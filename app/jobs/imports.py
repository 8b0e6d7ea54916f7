"""Import jobs: write one import's rows; a sweep resumes imports whose run was lost."""

from __future__ import annotations

import uuid
from typing import Any

from app.services import imports


async def run_import(ctx: dict[str, Any], organization_id: str, import_id: str) -> str:
    return await imports.run_import(ctx["sessions"], uuid.UUID(organization_id), uuid.UUID(import_id))


async def sweep_imports(ctx: dict[str, Any]) -> int:
    lost = await imports.sweep(ctx["sessions"])
    for organization_id, import_id in lost:
        await imports.run_import(ctx["sessions"], organization_id, import_id)
    return len(lost)
