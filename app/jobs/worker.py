"""The arq worker: job functions and cron schedule (DESIGN.md §5)."""

from __future__ import annotations

from typing import Any, ClassVar

from arq import cron
from arq.connections import RedisSettings

from app.core.db import create_engine, create_session_factory
from app.core.logging import configure_logging
from app.core.redis import arq_settings
from app.core.settings import get_settings
from app.jobs.maintenance import (
    purge_expired_idempotency_keys,
    purge_expired_refresh_tokens,
)


async def startup(ctx: dict[str, Any]) -> None:
    settings = get_settings()
    configure_logging(settings.log_level, json=settings.log_json)
    ctx["engine"] = create_engine(settings, pool_size=max(2, settings.worker_max_jobs // 2))
    ctx["sessions"] = create_session_factory(ctx["engine"])


async def shutdown(ctx: dict[str, Any]) -> None:
    await ctx["engine"].dispose()


class WorkerSettings:
    functions: ClassVar[list[Any]] = [
        purge_expired_idempotency_keys,
        purge_expired_refresh_tokens,
    ]
    cron_jobs: ClassVar[list[Any]] = [
        # Both purges are idempotent deletes, so a cron run twice (arq #196) does no harm.
        cron(purge_expired_idempotency_keys, minute={7, 37}, run_at_startup=True),
        cron(purge_expired_refresh_tokens, hour={3}, minute={17}),
    ]
    on_startup = startup
    on_shutdown = shutdown
    job_timeout = 300
    health_check_interval = 30


def worker_options() -> dict[str, Any]:
    """Settings that depend on the environment, read when the worker starts."""
    settings = get_settings()
    redis_settings: RedisSettings = arq_settings(settings)
    return {
        "redis_settings": redis_settings,
        "queue_name": settings.queue_name,
        "max_jobs": settings.worker_max_jobs,
    }
