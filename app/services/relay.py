"""The relay: turns committed events into webhook deliveries and sends them (DESIGN.md §5).

Everything it knows is in the database, so any number of relays (in any number of workers) can
run at once, and a relay killed at any point loses nothing:

* fan-out advances an organisation's `event_fanout` position in the transaction that inserts
  its deliveries, so each event becomes each subscription's delivery exactly once;
* a delivery is claimed with a lease (`sending`, `next_attempt_at` = when the lease ends) and a
  token; a relay that dies leaves the lease to run out and the delivery is sent again (webhooks
  are at-least-once: receivers de-duplicate on `webhook-id`), and a late answer from a relay
  that lost its lease is ignored;
* an entity's deliveries to one subscription go one at a time, in event order: a delivery made
  while an earlier one for the same entity and subscription is open waits (`next_attempt_at`
  NULL) until that one is delivered or has failed for good, which releases the next;
* each subscription is claimed from separately, up to its own share of the concurrent requests,
  so a receiver that answers slowly or never ties up only its own share (and each request ends
  at the timeout), and a backlog for one subscription never hides another's due deliveries.

The relay is the one part of Rapport that reads across organisations: it serves them all. Every
join it makes is on the composite `(organization_id, id)` keys, so rows still cannot mix.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Final

import aiohttp
import structlog
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core import events, outbound, retries, signatures
from app.core.enums import DeliveryStatus
from app.core.settings import Settings
from app.models.base import utcnow
from app.schemas.webhook import WebhookRead
from app.services import webhooks

log = structlog.get_logger(__name__)

# Waits after the 1st, 2nd, … failed attempt: about three days in all, ten attempts.
RETRY_DELAYS: Final = (5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400)
_LONGEST_RETRY_AFTER: Final = 86400
# A lease outlives the request it covers (which the timeout ends) and the writing of its outcome.
_LEASE_FACTOR: Final = 2
_FANOUT_BATCH: Final = 5000
# While a relay is busy, how often it looks for new events (an idle relay is woken instead).
_FAN_OUT_INTERVAL_SECONDS: Final = 0.2
# Deliveries claimed ahead per subscription, as a multiple of its share of concurrent requests.
_PREFETCH: Final = 4
_ORGANIZATIONS_PER_PASS: Final = 100

_BACKLOG = text(
    """
    SELECT s.organization_id, s.position
    FROM event_streams s LEFT JOIN event_fanout f ON f.organization_id = s.organization_id
    WHERE s.position > COALESCE(f.position, 0)
    LIMIT :limit
    """
)
_ENSURE_FANOUT = text(
    "INSERT INTO event_fanout (organization_id, position) VALUES (:organization_id, 0) ON CONFLICT DO NOTHING"
)
_LOCK_FANOUT = text("SELECT position FROM event_fanout WHERE organization_id = :organization_id FOR UPDATE SKIP LOCKED")
_FAN_OUT = text(
    """
    INSERT INTO webhook_deliveries (
        organization_id, id, webhook_id, event_id, event_position, event_type, entity_id,
        status, attempts, next_attempt_at, created_at, attempt_log
    )
    SELECT organization_id, rapport_uuid7(), webhook_id, event_id, position, type, entity_id,
           'pending', 0, CASE WHEN first_in_batch AND NOT already_open THEN now() END, now(), '[]'::jsonb
    FROM (
        SELECT e.organization_id, w.id AS webhook_id, e.id AS event_id, e.position, e.type, e.entity_id,
               row_number() OVER (PARTITION BY w.id, e.entity_id ORDER BY e.position) = 1 AS first_in_batch,
               EXISTS (
                   SELECT 1 FROM webhook_deliveries p
                   WHERE p.organization_id = e.organization_id AND p.webhook_id = w.id
                     AND p.entity_id = e.entity_id AND p.status IN ('pending', 'sending')
               ) AS already_open
        FROM events e
        JOIN webhooks w ON w.organization_id = e.organization_id AND w.active AND w.created_at <= e.occurred_at
        WHERE e.organization_id = :organization_id AND e.position > :after AND e.position <= :upto
          AND EXISTS (
              SELECT 1 FROM unnest(w.event_types) AS pattern
              WHERE pattern = '*' OR pattern = e.type
                 OR (right(pattern, 2) = '.*' AND left(e.type, length(pattern) - 1) = left(pattern, -1))
          )
    ) AS fanned
    ORDER BY position, webhook_id
    ON CONFLICT DO NOTHING
    """
)
_ADVANCE_FANOUT = text("UPDATE event_fanout SET position = :upto WHERE organization_id = :organization_id")

# Per active subscription (in random order, so none starves when the relay's own limit binds),
# its oldest due deliveries up to the share it has free.
_CLAIM = text(
    """
    WITH subscriptions AS (
        SELECT w.organization_id, w.id, COALESCE(b.remaining, :per_webhook) AS capacity
        FROM webhooks w
        LEFT JOIN unnest(CAST(:busy_ids AS uuid[]), CAST(:busy_left AS integer[])) AS b(webhook_id, remaining)
            ON b.webhook_id = w.id
        WHERE w.active AND COALESCE(b.remaining, :per_webhook) > 0
        ORDER BY random()
    ),
    chosen AS (
        SELECT due.organization_id, due.id
        FROM subscriptions s
        CROSS JOIN LATERAL (
            SELECT d.organization_id, d.id
            FROM webhook_deliveries d
            WHERE d.organization_id = s.organization_id AND d.webhook_id = s.id
              AND d.status IN ('pending', 'sending') AND d.next_attempt_at <= now()
            ORDER BY d.next_attempt_at
            LIMIT s.capacity
            FOR UPDATE SKIP LOCKED
        ) AS due
        LIMIT :limit
    )
    UPDATE webhook_deliveries d
    SET status = 'sending', claim_token = :token, next_attempt_at = now() + make_interval(secs => :lease)
    FROM chosen, events e, webhooks w
    WHERE d.organization_id = chosen.organization_id AND d.id = chosen.id
      AND e.organization_id = d.organization_id AND e.id = d.event_id
      AND w.organization_id = d.organization_id AND w.id = d.webhook_id
    RETURNING d.organization_id, d.id AS delivery_id, d.webhook_id, d.attempts,
              e.id, e.type, e.position, e.occurred_at, e.entity_type, e.entity_id,
              e.actor_type, e.actor_id, e.request_id, e.data, e.changes,
              w.url, w.secret_sealed, w.previous_secret_sealed, w.previous_secret_expires_at
    """
)
_RECORD = text(
    """
    UPDATE webhook_deliveries d SET
        status = r.status,
        attempts = d.attempts + 1,
        next_attempt_at = r.next_attempt_at,
        claim_token = NULL,
        last_attempt_at = r.attempted_at,
        last_status_code = r.status_code,
        last_latency_ms = r.latency_ms,
        last_error = r.error,
        last_response = r.response,
        delivered_at = CASE WHEN r.status = 'delivered' THEN r.attempted_at ELSE d.delivered_at END,
        attempt_log = (CASE WHEN jsonb_array_length(d.attempt_log) >= 20 THEN d.attempt_log - 0 ELSE d.attempt_log END)
            || jsonb_build_array(jsonb_strip_nulls(jsonb_build_object(
                'at', r.attempted_at, 'status_code', r.status_code, 'latency_ms', r.latency_ms, 'error', r.error
            )))
    FROM unnest(
        CAST(:organization_ids AS uuid[]), CAST(:ids AS uuid[]), CAST(:tokens AS uuid[]),
        CAST(:statuses AS text[]), CAST(:next_attempts AS timestamptz[]), CAST(:attempted AS timestamptz[]),
        CAST(:status_codes AS integer[]), CAST(:latencies AS integer[]), CAST(:errors AS text[]),
        CAST(:responses AS text[])
    ) AS r(organization_id, id, token, status, next_attempt_at, attempted_at, status_code, latency_ms, error, response)
    WHERE d.organization_id = r.organization_id AND d.id = r.id AND d.claim_token = r.token
    RETURNING d.organization_id, d.webhook_id, d.entity_id, d.status
    """
)
# The next delivery of each (subscription, entity) whose open one just ended, if it was waiting.
_RELEASE_NEXT = text(
    """
    UPDATE webhook_deliveries d SET next_attempt_at = now()
    FROM (
        SELECT DISTINCT ON (n.organization_id, n.webhook_id, n.entity_id) n.organization_id, n.id, n.next_attempt_at
        FROM webhook_deliveries n
        JOIN unnest(CAST(:organization_ids AS uuid[]), CAST(:webhook_ids AS uuid[]), CAST(:entity_ids AS uuid[]))
            AS ended(organization_id, webhook_id, entity_id)
            ON n.organization_id = ended.organization_id AND n.webhook_id = ended.webhook_id
           AND n.entity_id = ended.entity_id
        WHERE n.status IN ('pending', 'sending')
        ORDER BY n.organization_id, n.webhook_id, n.entity_id, n.event_position
    ) AS head
    WHERE head.next_attempt_at IS NULL AND d.organization_id = head.organization_id AND d.id = head.id
    """
)
# A delivery can be made waiting just as the one it waits for ends (fan-out and the end of a
# send commit concurrently); the sweep releases such a delivery when nothing before it is open.
_RELEASE_STRANDED = text(
    """
    UPDATE webhook_deliveries d SET next_attempt_at = now()
    FROM (
        SELECT DISTINCT ON (n.organization_id, n.webhook_id, n.entity_id) n.organization_id, n.id, n.next_attempt_at
        FROM webhook_deliveries n
        WHERE n.status IN ('pending', 'sending')
          AND EXISTS (
              SELECT 1 FROM webhook_deliveries w
              WHERE w.status = 'pending' AND w.next_attempt_at IS NULL
                AND w.organization_id = n.organization_id AND w.webhook_id = n.webhook_id AND w.entity_id = n.entity_id
          )
        ORDER BY n.organization_id, n.webhook_id, n.entity_id, n.event_position
    ) AS head
    WHERE head.next_attempt_at IS NULL AND d.organization_id = head.organization_id AND d.id = head.id
    """
)
# Relays finishing batches for the same subscriptions lock them in one order, not in whatever
# order their batches list them (which deadlocks).
_LOCK_WEBHOOKS = text(
    """
    SELECT 1 FROM webhooks w
    JOIN unnest(CAST(:organization_ids AS uuid[]), CAST(:ids AS uuid[])) AS r(organization_id, id)
        ON w.organization_id = r.organization_id AND w.id = r.id
    ORDER BY w.organization_id, w.id
    FOR UPDATE OF w
    """
)
_HEALTH = text(
    """
    UPDATE webhooks w SET
        consecutive_failures = CASE WHEN r.last_success IS NULL THEN w.consecutive_failures ELSE 0 END + r.failures,
        failing_since = CASE
            WHEN r.failures = 0 THEN NULL
            WHEN r.last_success IS NULL THEN COALESCE(w.failing_since, r.first_failure)
            ELSE r.first_failure
        END,
        last_success_at = COALESCE(r.last_success, w.last_success_at)
    FROM unnest(
        CAST(:organization_ids AS uuid[]), CAST(:ids AS uuid[]), CAST(:last_successes AS timestamptz[]),
        CAST(:failures AS integer[]), CAST(:first_failures AS timestamptz[])
    ) AS r(organization_id, id, last_success, failures, first_failure)
    WHERE w.organization_id = r.organization_id AND w.id = r.id
    RETURNING w.organization_id, w.id, w.consecutive_failures, w.failing_since
    """
)
_DISABLE = text(
    """
    UPDATE webhooks SET active = false, disabled_at = now(), disabled_reason = :reason, version = version + 1
    WHERE organization_id = :organization_id AND id = :id AND active
    RETURNING *
    """
)


@dataclass(frozen=True, slots=True)
class Claimed:
    organization_id: uuid.UUID
    delivery_id: uuid.UUID
    webhook_id: uuid.UUID
    token: uuid.UUID
    attempts: int
    url: str
    secrets: tuple[str, ...]
    event_id: uuid.UUID
    body: bytes
    send_by: float  # monotonic time


@dataclass(frozen=True, slots=True)
class Outcome:
    claimed: Claimed
    attempted_at: datetime
    status_code: int | None = None
    latency_ms: int | None = None
    error: str | None = None
    response: str | None = None
    retry_after: float | None = None

    @property
    def succeeded(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


@dataclass(slots=True)
class RelayReport:
    fanned_out: int = 0
    delivered: int = 0
    failed: int = 0
    disabled: list[uuid.UUID] = field(default_factory=list)


def next_attempt(outcome: Outcome, rng: random.Random) -> tuple[DeliveryStatus, datetime | None]:
    """Where a delivery goes after an attempt: delivered, a retry (when), or failed for good."""
    if outcome.succeeded:
        return DeliveryStatus.delivered, None
    attempt = outcome.claimed.attempts + 1
    if attempt > len(RETRY_DELAYS):
        return DeliveryStatus.failed, None
    if outcome.retry_after is not None:
        delay = min(max(outcome.retry_after, 1.0), _LONGEST_RETRY_AFTER)
    else:
        delay = retries.backoff_seconds(RETRY_DELAYS, attempt, rng)
    return DeliveryStatus.pending, outcome.attempted_at + timedelta(seconds=delay)


class Relay:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        http: aiohttp.ClientSession,
        settings: Settings,
        *,
        rng: random.Random | None = None,
    ) -> None:
        self._sessions = sessions
        self._http = http
        self._settings = settings
        self._policy = webhooks.target_policy(settings)
        self._rng = rng or random.Random()
        self._lease_seconds = settings.webhooks_timeout_seconds * _LEASE_FACTOR
        self._shares: dict[uuid.UUID, asyncio.Semaphore] = {}
        self._in_flight = asyncio.Semaphore(settings.webhooks_max_in_flight)

    async def run(self, *, budget_seconds: float, report: RelayReport | None = None) -> RelayReport:
        """Relays until nothing is due, or until the budget is spent and what was claimed has
        been sent.

        Sending never waits for the database: each subscription has deliveries claimed ahead
        (up to `_PREFETCH` times its share), and a finished request's slot goes at once to the
        next claimed delivery while the outcomes are written, and more claimed, in one
        transaction per turn of the loop."""
        report = report or RelayReport()
        deadline = time.monotonic() + budget_seconds
        tasks: set[asyncio.Task[Outcome | Claimed]] = set()
        held: Counter[uuid.UUID] = Counter()  # claimed and not yet written back, per subscription
        finished: list[Outcome] = []
        next_fan_out = 0.0
        fanned = 0
        try:
            while True:
                now = time.monotonic()
                claiming = now < deadline
                # Look for new events again at once while the last look found some.
                looked = claiming and (fanned > 0 or now >= next_fan_out)
                fanned = await self.fan_out() if looked else 0
                if looked:
                    report.fanned_out += fanned
                    next_fan_out = now + _FAN_OUT_INTERVAL_SECONDS
                recorded = bool(finished)
                batch = await self.record_and_claim(finished, held, report, claim=claiming)
                finished = []
                for delivery in batch:
                    held[delivery.webhook_id] += 1
                    tasks.add(asyncio.create_task(self._send_in_turn(delivery)))
                if not tasks:
                    if batch or fanned:
                        continue
                    if claiming and (recorded or not looked):
                        # One last look, after the last write: it may have made events of its own
                        # (webhook.disabled) or released deliveries.
                        next_fan_out = 0.0
                        continue
                    return report
                done, _ = await asyncio.wait(tasks, timeout=0.25, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    tasks.discard(task)
                    result = task.result()
                    if isinstance(result, Claimed):
                        # Not sent: its lease ran too short; it is claimed again when it runs out.
                        held[result.webhook_id] -= 1
                    else:
                        finished.append(result)
        finally:
            for task in tasks:
                task.cancel()

    async def _send_in_turn(self, claimed: Claimed) -> Outcome | Claimed:
        """Sends within the subscription's share of requests, unless the wait for a turn used up
        so much of the lease that another relay could claim the delivery during the request."""
        share = self._shares.get(claimed.webhook_id)
        if share is None:
            share = self._shares[claimed.webhook_id] = asyncio.Semaphore(
                self._settings.webhooks_max_in_flight_per_endpoint
            )
        async with share, self._in_flight:
            if time.monotonic() > claimed.send_by:
                return claimed
            return await self.send(claimed)

    async def release_stranded(self) -> int:
        """Releases waiting deliveries that nothing open is ahead of any more (see _RELEASE_STRANDED)."""
        async with self._sessions() as session, session.begin():
            result = await session.execute(_RELEASE_STRANDED)
        return int(result.rowcount or 0)  # type: ignore[attr-defined]

    async def fan_out(self) -> int:
        """Turns committed events into pending deliveries; the number of events handled."""
        handled = 0
        async with self._sessions() as session:
            backlog = (await session.execute(_BACKLOG, {"limit": _ORGANIZATIONS_PER_PASS})).all()
            await session.commit()
        for organization_id, stream_position in backlog:
            async with self._sessions() as session, session.begin():
                await session.execute(_ENSURE_FANOUT, {"organization_id": organization_id})
                after = await session.scalar(_LOCK_FANOUT, {"organization_id": organization_id})
                if after is None or after >= stream_position:
                    continue  # another relay has it, or did it already
                upto = min(stream_position, after + _FANOUT_BATCH)
                await session.execute(_FAN_OUT, {"organization_id": organization_id, "after": after, "upto": upto})
                await session.execute(_ADVANCE_FANOUT, {"organization_id": organization_id, "upto": upto})
                handled += upto - after
        return handled

    async def _claim(self, session: AsyncSession, held: Counter[uuid.UUID]) -> list[Claimed]:
        ahead = self._settings.webhooks_max_in_flight_per_endpoint * _PREFETCH
        limit = self._settings.webhooks_max_in_flight * _PREFETCH - sum(held.values())
        if limit <= 0:
            return []
        busy = [(webhook_id, ahead - count) for webhook_id, count in held.items() if count > 0]
        token = uuid.uuid4()
        claimed_at = time.monotonic()
        rows = (
            await session.execute(
                _CLAIM,
                {
                    "limit": limit,
                    "per_webhook": ahead,
                    "busy_ids": [webhook_id for webhook_id, _ in busy],
                    "busy_left": [left for _, left in busy],
                    "token": token,
                    "lease": self._lease_seconds,
                },
            )
        ).all()
        # The last moment a request may start and still end (at the timeout) within the lease.
        send_by = claimed_at + self._lease_seconds - self._settings.webhooks_timeout_seconds - 1
        bodies: dict[uuid.UUID, bytes] = {}
        claimed = []
        for row in rows:
            body = bodies.get(row.id) or bodies.setdefault(row.id, webhooks.event_body(row))
            claimed.append(
                Claimed(
                    organization_id=row.organization_id,
                    delivery_id=row.delivery_id,
                    webhook_id=row.webhook_id,
                    token=token,
                    attempts=row.attempts,
                    url=row.url,
                    secrets=webhooks.signing_secrets(row, self._settings),
                    event_id=row.id,
                    body=body,
                    send_by=send_by,
                )
            )
        return claimed

    async def send(self, claimed: Claimed) -> Outcome:
        attempted_at = utcnow()
        started = time.monotonic()
        headers = signatures.signed_headers(claimed.secrets, str(claimed.event_id), claimed.body)
        try:
            reply = await outbound.post(
                self._http, claimed.url, body=claimed.body, headers=headers, policy=self._policy
            )
        except outbound.RefusedTarget as refused:
            return Outcome(claimed, attempted_at, error=f"refused: {refused.reason}"[:500])
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            latency = int((time.monotonic() - started) * 1000)
            return Outcome(claimed, attempted_at, latency_ms=latency, error=webhooks.describe_failure(exc))
        return Outcome(
            claimed,
            attempted_at,
            status_code=reply.status,
            latency_ms=reply.latency_ms,
            response=reply.body or None,
            retry_after=reply.retry_after_seconds,
            error=None if 200 <= reply.status < 300 else f"HTTP {reply.status}",
        )

    async def record_and_claim(
        self, outcomes: Sequence[Outcome], held: Counter[uuid.UUID], report: RelayReport, *, claim: bool
    ) -> list[Claimed]:
        """In one transaction: writes the outcomes (and what follows from them) and claims more."""
        for outcome in outcomes:
            held[outcome.claimed.webhook_id] -= 1
        async with self._sessions() as session, session.begin():
            if outcomes:
                await self._record(session, outcomes, report)
            return await self._claim(session, held) if claim else []

    async def _record(self, session: AsyncSession, outcomes: Sequence[Outcome], report: RelayReport) -> None:
        """Writes the attempts, releases what waited for them, updates the subscriptions' health
        and disables the ones that are gone or have failed for too long."""
        placed = [(outcome, *next_attempt(outcome, self._rng)) for outcome in outcomes]
        recorded = await session.execute(
            _RECORD,
            {
                "organization_ids": [o.claimed.organization_id for o, _, _ in placed],
                "ids": [o.claimed.delivery_id for o, _, _ in placed],
                "tokens": [o.claimed.token for o, _, _ in placed],
                "statuses": [status.value for _, status, _ in placed],
                "next_attempts": [when for _, _, when in placed],
                "attempted": [o.attempted_at for o, _, _ in placed],
                "status_codes": [o.status_code for o, _, _ in placed],
                "latencies": [o.latency_ms for o, _, _ in placed],
                "errors": [o.error for o, _, _ in placed],
                "responses": [o.response for o, _, _ in placed],
            },
        )
        ended = [row for row in recorded if row.status != DeliveryStatus.pending]
        if ended:
            await session.execute(
                _RELEASE_NEXT,
                {
                    "organization_ids": [row.organization_id for row in ended],
                    "webhook_ids": [row.webhook_id for row in ended],
                    "entity_ids": [row.entity_id for row in ended],
                },
            )
        await self._update_health(session, outcomes, report)
        report.delivered += sum(1 for o in outcomes if o.succeeded)
        report.failed += sum(1 for o in outcomes if not o.succeeded)

    async def _update_health(self, session: AsyncSession, outcomes: Sequence[Outcome], report: RelayReport) -> None:
        health: dict[tuple[uuid.UUID, uuid.UUID], _Health] = {}
        for outcome in sorted(outcomes, key=lambda o: o.attempted_at):
            key = (outcome.claimed.organization_id, outcome.claimed.webhook_id)
            health.setdefault(key, _Health()).add(outcome)
        keys = {"organization_ids": [organization_id for organization_id, _ in health], "ids": [w for _, w in health]}
        await session.execute(_LOCK_WEBHOOKS, keys)
        rows = (
            await session.execute(
                _HEALTH,
                {
                    "organization_ids": [organization_id for organization_id, _ in health],
                    "ids": [webhook_id for _, webhook_id in health],
                    "last_successes": [h.last_success for h in health.values()],
                    "failures": [h.failures for h in health.values()],
                    "first_failures": [h.first_failure for h in health.values()],
                },
            )
        ).all()
        window = timedelta(hours=self._settings.webhooks_disable_after_hours)
        now = utcnow()
        for row in rows:
            key = (row.organization_id, row.id)
            if health[key].gone:
                reason = "the receiver answered 410 Gone"
            elif (
                row.consecutive_failures >= self._settings.webhooks_disable_min_failures
                and row.failing_since is not None
                and now - row.failing_since >= window
            ):
                reason = f"failing since {row.failing_since.isoformat()} ({row.consecutive_failures} attempts in a row)"
            else:
                continue
            await self._disable(session, row.organization_id, row.id, reason, report)

    async def _disable(
        self, session: AsyncSession, organization_id: uuid.UUID, webhook_id: uuid.UUID, reason: str, report: RelayReport
    ) -> None:
        webhook = (
            await session.execute(_DISABLE, {"organization_id": organization_id, "id": webhook_id, "reason": reason})
        ).one_or_none()
        if webhook is None:
            return  # already disabled
        log.warning("webhook_disabled", organization_id=str(organization_id), webhook_id=str(webhook_id), reason=reason)
        events.emit(
            session,
            organization_id=organization_id,
            type="webhook.disabled",
            entity_type="webhook",
            entity_id=webhook_id,
            data=WebhookRead.model_validate(webhook).model_dump(mode="json"),
            actor=events.SYSTEM,
            changes={"active": {"before": True, "after": False}, "disabled_reason": {"before": None, "after": reason}},
        )
        report.disabled.append(webhook_id)


@dataclass(slots=True)
class _Health:
    """One subscription's attempts in a batch, in time order."""

    last_success: datetime | None = None
    failures: int = 0  # since the last success in the batch
    first_failure: datetime | None = None
    gone: bool = False

    def add(self, outcome: Outcome) -> None:
        if outcome.succeeded:
            self.last_success, self.failures, self.first_failure = outcome.attempted_at, 0, None
            return
        self.failures += 1
        self.first_failure = self.first_failure or outcome.attempted_at
        self.gone = self.gone or outcome.status_code == 410
