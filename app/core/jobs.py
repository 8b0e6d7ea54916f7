"""Enqueueing background jobs from services, once the transaction that asked for them commits
(a job must find the rows it is about). The process registers how it enqueues at start-up; a
sweep in the worker catches what a lost enqueue leaves behind."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, Final

import structlog
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.db import after_commit
from app.models.base import utcnow

log = structlog.get_logger(__name__)

Enqueuer = Callable[[str, tuple[Any, ...]], Awaitable[object]]
# Registered by whatever runs in this process (the API's lifespan); the latest one still
# registered enqueues, so an app started and stopped beside another (tests) leaves it working.
_enqueuers: list[Enqueuer] = []
_pending: set[asyncio.Task[None]] = set()
# A pending job record older than this was never enqueued (or its enqueue was lost).
_ENQUEUE_GRACE: Final = timedelta(seconds=30)


def add_enqueuer(enqueuer: Enqueuer) -> None:
    _enqueuers.append(enqueuer)


def remove_enqueuer(enqueuer: Enqueuer) -> None:
    if enqueuer in _enqueuers:
        _enqueuers.remove(enqueuer)


def enqueue_after_commit(session: AsyncSession, function: str, *args: Any) -> None:
    def enqueue() -> None:
        if not _enqueuers:
            return
        task = asyncio.get_running_loop().create_task(_enqueue(_enqueuers[-1], function, args))
        _pending.add(task)
        task.add_done_callback(_pending.discard)

    after_commit(session, enqueue)


async def _enqueue(enqueuer: Enqueuer, function: str, args: tuple[Any, ...]) -> None:
    try:
        await enqueuer(function, args)
    except Exception as exc:  # noqa: BLE001 - the worker's sweep finds the job's rows anyway
        log.warning("enqueue_failed", function=function, error=str(exc))


# Job records (an export, a duplicate scan) share a life: pending → running → done | failed,
# with `status`, `started_at` and `created_at` columns. Jobs start them and sweeps recover them
# through these two functions.


async def claim(
    sessions: async_sessionmaker[AsyncSession], model: Any, organization_id: uuid.UUID, record_id: uuid.UUID
) -> Any:
    """The job record, now running, if it was pending; None if another run claimed or finished it
    (arq may run a job twice: the claim is the one conditional UPDATE that decides)."""
    async with sessions() as session, session.begin():
        return (
            await session.execute(
                update(model)
                .where(model.organization_id == organization_id, model.id == record_id, model.status == "pending")
                .values(status="running", started_at=utcnow())
                .returning(model)
            )
        ).scalar_one_or_none()


async def lost(session: AsyncSession, model: Any, *, stale_after: timedelta) -> list[tuple[uuid.UUID, uuid.UUID]]:
    """Job records whose job was lost, to run again: those running for longer than `stale_after`
    (their worker died) are pending again, and the pending ones the queue should have started."""
    now = utcnow()
    await session.execute(
        update(model).where(model.status == "running", model.started_at < now - stale_after).values(status="pending")
    )
    waiting = await session.execute(
        select(model.organization_id, model.id).where(
            model.status == "pending", model.created_at < now - _ENQUEUE_GRACE
        )
    )
    return [(organization_id, record_id) for organization_id, record_id in waiting]
