"""Enqueueing background jobs from services, once the transaction that asked for them commits
(a job must find the rows it is about). The process registers how it enqueues at start-up; a
sweep in the worker catches what a lost enqueue leaves behind."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.db import after_commit

log = structlog.get_logger(__name__)

Enqueuer = Callable[[str, tuple[Any, ...]], Awaitable[object]]
# Registered by whatever runs in this process (the API's lifespan); the latest one still
# registered enqueues, so an app started and stopped beside another (tests) leaves it working.
_enqueuers: list[Enqueuer] = []
_pending: set[asyncio.Task[None]] = set()


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
