"""Relay jobs: woken after commits, and a sweep that finds what a lost wake-up left behind."""

from __future__ import annotations

import time
from typing import Any, Final

import structlog

from app.core.events import RELAY_WAKE_FLAG
from app.services import events
from app.services.relay import Relay, RelayReport

log = structlog.get_logger(__name__)

# A relay job hands over to the next one after this long, so arq's job timeout stays short: a
# worker that dies mid-job blocks its job id only until that timeout (arq #343) — the sweep runs
# meanwhile under ids of its own.
RELAY_BUDGET_SECONDS: Final = 45.0
RELAY_JOB_TIMEOUT_SECONDS: Final = 90


def _summary(report: RelayReport) -> dict[str, Any]:
    summary = {"fanned_out": report.fanned_out, "delivered": report.delivered, "failed": report.failed}
    if report.fanned_out or report.delivered or report.failed:
        log.info("relay_ran", **summary, disabled=[str(w) for w in report.disabled])
    return summary


async def relay_events(ctx: dict[str, Any]) -> dict[str, Any]:
    relay: Relay = ctx["relay"]
    redis = ctx["redis"]
    # Commits made while this job runs cannot enqueue it again (its id is taken); they raise the
    # flag instead, and the job looks once more.
    deadline = time.monotonic() + RELAY_BUDGET_SECONDS
    await redis.delete(RELAY_WAKE_FLAG)
    report = await relay.run(budget_seconds=RELAY_BUDGET_SECONDS)
    while time.monotonic() < deadline and await redis.delete(RELAY_WAKE_FLAG):
        report = await relay.run(budget_seconds=deadline - time.monotonic(), report=report)
    return _summary(report)


async def sweep_events(ctx: dict[str, Any]) -> dict[str, Any]:
    relay: Relay = ctx["relay"]
    await relay.release_stranded()
    return _summary(await relay.run(budget_seconds=RELAY_BUDGET_SECONDS))


async def purge_old_events(ctx: dict[str, Any]) -> int:
    return await events.purge_expired(ctx["sessions"], ctx["settings"].events_retention_days)
