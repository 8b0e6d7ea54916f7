"""Readiness checks for the probes."""

from __future__ import annotations

import asyncio

from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

TIMEOUT_SECONDS = 2


async def database_ready(engine: AsyncEngine) -> str:
    try:
        async with asyncio.timeout(TIMEOUT_SECONDS), engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
    except Exception as exc:  # noqa: BLE001 - any failure means "not ready"; the reason is reported
        return f"error: {type(exc).__name__}"
    return "ok"


async def redis_ready(redis: Redis) -> str:
    try:
        async with asyncio.timeout(TIMEOUT_SECONDS):
            await redis.ping()
    except Exception as exc:  # noqa: BLE001 - as above
        return f"error: {type(exc).__name__}"
    return "ok"
