"""The arq worker: job functions and cron schedule (DESIGN.md §5)."""

from __future__ import annotations

from typing import Any, ClassVar

from arq import cron, func
from arq.connections import RedisSettings

from app.core import collector, events, outbound
from app.core.db import create_engine, create_session_factory
from app.core.logging import configure_logging
from app.core.redis import arq_settings
from app.core.settings import get_settings
from app.jobs.contracts import expire_contracts, remind_contract_renewals
from app.jobs.duplicates import run_duplicate_scan, sweep_duplicate_scans
from app.jobs.exports import run_export, sweep_exports
from app.jobs.imports import run_import, sweep_imports
from app.jobs.lifecycle import churn_inactive_customers
from app.jobs.mail import send_mail
from app.jobs.maintenance import (
    purge_expired_idempotency_keys,
    purge_expired_refresh_tokens,
)
from app.jobs.relay import RELAY_JOB_TIMEOUT_SECONDS, purge_old_events, relay_events, sweep_events
from app.jobs.scoring import RESCORE_JOB_TIMEOUT_SECONDS, decay_scores, rescore_organization, sweep_rescores
from app.jobs.tasks import announce_due_tasks
from app.services import webhooks
from app.services.relay import Relay

IMPORT_JOB_TIMEOUT_SECONDS = 3 * 3600
SCAN_JOB_TIMEOUT_SECONDS = 3600


async def startup(ctx: dict[str, Any]) -> None:
    settings = get_settings()
    collector.tune_for_bulk_work()
    configure_logging(settings.log_level, json=settings.log_json)
    ctx["engine"] = create_engine(
        settings,
        pool_size=max(2, settings.worker_max_jobs // 2),
        extra_server_settings={
            # The relay's statements run over tables that swing from empty to a burst's worth of
            # rows; a generic plan cached while they were empty would scan them row by row after.
            "plan_cache_mode": "force_custom_plan",
            # Jobs are safe to run twice and keep their progress in the rows they write, so a
            # commit lost in a database crash is redone, not lost: no need to wait for the WAL
            # flush on every commit (the relay commits many small transactions).
            "synchronous_commit": "off",
        },
    )
    ctx["sessions"] = create_session_factory(ctx["engine"])
    ctx["settings"] = settings
    ctx["http"] = outbound.open_session(
        webhooks.target_policy(settings),
        timeout_seconds=settings.webhooks_timeout_seconds,
        limit=settings.webhooks_max_in_flight,
        # Fairness between subscriptions is the relay's per-subscription share, not a per-host cap:
        # many subscriptions may share one receiving host.
        limit_per_host=0,
    )
    ctx["relay"] = Relay(ctx["sessions"], ctx["http"], settings)
    # Events a job commits (a subscription disabled) wake the relay like the API's do.
    if (redis := ctx.get("redis")) is not None:
        waker = events.RelayWaker(redis, queue_name=redis.default_queue_name)
        waker.start()
        ctx["waker"] = waker
        events.add_commit_listener(waker.wake)


async def shutdown(ctx: dict[str, Any]) -> None:
    if (waker := ctx.get("waker")) is not None:
        events.remove_commit_listener(waker.wake)
        await waker.stop()
    await ctx["http"].close()
    await ctx["engine"].dispose()


class WorkerSettings:
    functions: ClassVar[list[Any]] = [
        purge_expired_idempotency_keys,
        purge_expired_refresh_tokens,
        purge_old_events,
        run_export,
        sweep_exports,
        # An import of a million rows runs for minutes; its progress is committed chunk by chunk,
        # so a run cut short is resumed by the sweep, not redone.
        func(run_import, timeout=IMPORT_JOB_TIMEOUT_SECONDS),
        func(sweep_imports, timeout=IMPORT_JOB_TIMEOUT_SECONDS),
        func(run_duplicate_scan, timeout=SCAN_JOB_TIMEOUT_SECONDS),
        func(sweep_duplicate_scans, timeout=SCAN_JOB_TIMEOUT_SECONDS),
        announce_due_tasks,
        send_mail,
        func(rescore_organization, timeout=RESCORE_JOB_TIMEOUT_SECONDS),
        func(sweep_rescores, timeout=RESCORE_JOB_TIMEOUT_SECONDS),
        decay_scores,
        churn_inactive_customers,
        remind_contract_renewals,
        expire_contracts,
        # No result kept: the relay job's fixed id must be free again as soon as it ends.
        func(relay_events, keep_result=0, timeout=RELAY_JOB_TIMEOUT_SECONDS),
    ]
    cron_jobs: ClassVar[list[Any]] = [
        # The purges are idempotent deletes and relays share work through row locks, so a cron
        # job run twice (arq #196) does no harm.
        cron(purge_expired_idempotency_keys, minute={7, 37}, run_at_startup=True),
        cron(purge_expired_refresh_tokens, hour={3}, minute={17}),
        cron(purge_old_events, hour={4}, minute={27}),
        # Claims are conditional updates, so a duplicate run finds nothing to do.
        cron(sweep_exports, second={40}, run_at_startup=True),
        cron(sweep_imports, second={50}, run_at_startup=True, timeout=IMPORT_JOB_TIMEOUT_SECONDS),
        cron(sweep_duplicate_scans, second={20}, run_at_startup=True, timeout=SCAN_JOB_TIMEOUT_SECONDS),
        # Rescores queue on a per-organisation lock and clear only the mark they saw: a duplicate
        # run does nothing, a lost one is swept up here.
        cron(sweep_rescores, second={30}, run_at_startup=True, timeout=RESCORE_JOB_TIMEOUT_SECONDS),
        cron(decay_scores, hour={2}, minute={43}),
        # Churned contacts are no longer customers, so a second run finds nobody to move.
        cron(churn_inactive_customers, hour={3}, minute={53}),
        # Each reminder is claimed by a conditional UPDATE in the transaction that emits it, so
        # two workers running this at once announce every task once.
        cron(announce_due_tasks, second={10, 40}, run_at_startup=True),
        # Messages are leased by a committed claim before they are sent, so runs on two workers
        # send each message once (and a run that dies leaves its lease to run out). Every 10 s,
        # so a reminder queued at :10 or :40 goes out within seconds and retries keep their times.
        cron(send_mail, second={5, 15, 25, 35, 45, 55}, run_at_startup=True),
        # Claimed by conditional UPDATEs in the transactions that emit their events: a run on two
        # workers reminds of and expires each contract once. Hourly, so a worker that was down
        # at the usual time catches up within the hour.
        cron(remind_contract_renewals, minute={13}, run_at_startup=True),
        cron(expire_contracts, minute={3}, run_at_startup=True),
        cron(
            sweep_events,
            second=set(range(0, 60, 5)),
            run_at_startup=True,
            timeout=RELAY_JOB_TIMEOUT_SECONDS,
            keep_result=0,
        ),
    ]
    on_startup = startup
    on_shutdown = shutdown
    job_timeout = 300
    health_check_interval = 30
    # Commit-to-delivery latency includes the wait for the worker's next look at the queue.
    poll_delay = 0.1


def worker_options() -> dict[str, Any]:
    """Settings that depend on the environment, read when the worker starts."""
    settings = get_settings()
    redis_settings: RedisSettings = arq_settings(settings)
    return {
        "redis_settings": redis_settings,
        "queue_name": settings.queue_name,
        "max_jobs": settings.worker_max_jobs,
    }
