"""Lifecycle jobs: the daily pass that churns customers inactive for too long."""

from __future__ import annotations

from typing import Any

from app.services import lifecycle


async def churn_inactive_customers(ctx: dict[str, Any]) -> int:
    return await lifecycle.churn_inactive(ctx["sessions"])
