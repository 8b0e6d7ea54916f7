"""Background jobs: called directly, and run by a real arq worker in burst mode."""

from __future__ import annotations

import gc
import uuid
from datetime import timedelta
from typing import Any

from arq import create_pool
from arq.worker import Worker
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core import collector
from app.core.redis import arq_settings
from app.core.settings import Settings
from app.jobs import maintenance
from app.jobs.worker import WorkerSettings, shutdown, startup
from app.models.base import utcnow
from app.models.idempotency import IdempotencyRecord
from app.models.organization import RefreshToken
from tests.helpers import Tenant


async def _expired_key(db: AsyncSession) -> str:
    key = f"expired-{uuid.uuid4()}"
    now = utcnow()
    db.add(
        IdempotencyRecord(
            scope="anonymous",
            key=key,
            fingerprint=b"x" * 32,
            created_at=now - timedelta(days=2),
            expires_at=now - timedelta(days=1),
            response_status=201,
            response_body=b"{}",
        )
    )
    await db.commit()
    return key


async def _exists(db: AsyncSession, key: str) -> bool:
    return bool(await db.scalar(select(func.count()).where(IdempotencyRecord.key == key)))


async def test_purge_jobs_called_directly(db: AsyncSession, tenant: Tenant) -> None:
    key = await _expired_key(db)
    token = (
        await db.execute(select(RefreshToken).where(RefreshToken.user_id == uuid.UUID(tenant.user_id)))
    ).scalar_one()
    token.expires_at = utcnow() - timedelta(days=2)
    token_id = token.id
    await db.commit()
    ctx: dict[str, Any] = {}
    thresholds = gc.get_threshold()
    await startup(ctx)
    try:
        assert gc.get_threshold() == collector.BULK_WORK_THRESHOLDS
        assert await maintenance.purge_expired_idempotency_keys(ctx) >= 1
        assert await maintenance.purge_expired_refresh_tokens(ctx) >= 1
        assert await maintenance.purge_expired_idempotency_keys(ctx) == 0  # idempotent
    finally:
        await shutdown(ctx)
        gc.set_threshold(*thresholds)
    assert not await _exists(db, key)
    assert await db.scalar(select(func.count()).where(RefreshToken.id == token_id)) == 0


async def test_a_real_worker_runs_enqueued_jobs(db: AsyncSession, settings: Settings) -> None:
    key = await _expired_key(db)
    queue = f"rapport:test:{uuid.uuid4().hex}"
    redis = await create_pool(arq_settings(settings), default_queue_name=queue)
    try:
        job = await redis.enqueue_job("purge_expired_idempotency_keys", _queue_name=queue)
        assert job is not None
        worker = Worker(
            functions=WorkerSettings.functions,
            on_startup=startup,
            on_shutdown=shutdown,
            redis_pool=redis,
            queue_name=queue,
            burst=True,
            poll_delay=0.05,
            handle_signals=False,
        )
        try:
            await worker.main()
        finally:
            # `main` returns without the shutdown hook (arq's `run` calls it in `close`): without
            # it the worker's relay waker would stay subscribed to this process's commits.
            await shutdown(worker.ctx)
        assert worker.jobs_complete == 1 and worker.jobs_failed == 0
        assert await job.result(timeout=5) >= 1
    finally:
        await redis.aclose()
    assert not await _exists(db, key)
