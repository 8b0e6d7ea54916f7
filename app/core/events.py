"""The transactional outbox (DESIGN.md §2, §4).

Services `emit` events while they work; the events are written just before the transaction
commits, in one statement, numbered by a per-organisation counter whose row lock is held until
the commit. Positions therefore follow commit order, without gaps: a reader that has seen
position n has seen everything committed before it. Writing at the last moment keeps that lock
for the length of a commit, not of a request. Once the commit is done the relay is woken; if the
wake-up is lost (Redis or the worker down) the relay's periodic sweep finds the events anyway,
because the database is the source of truth.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import structlog
from sqlalchemy import event, insert, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, SessionTransaction

from app.core.context import request_id_var
from app.core.db import copy_rows_in_orm_event
from app.core.ids import new_id
from app.core.principal import Principal
from app.models.base import utcnow
from app.models.event import Event

log = structlog.get_logger(__name__)

# The catalogue a subscription's patterns are checked against; each issue that adds a kind of
# change adds its types here.
EVENT_TYPES: Final = frozenset(
    {
        "contact.created",
        "contact.updated",
        "contact.archived",
        "contact.restored",
        "contact.assigned",
        "contact.lifecycle_stage_changed",
        "contact.erased",
        "contact.merged",
        "company.created",
        "company.updated",
        "company.archived",
        "company.restored",
        "company.assigned",
        "company.merged",
        "deal.created",
        "deal.updated",
        "deal.archived",
        "deal.restored",
        "deal.assigned",
        "deal.stage_changed",
        "deal.won",
        "deal.lost",
        "task.created",
        "task.updated",
        "task.completed",
        "task.deleted",
        "task.due",
        "order.created",
        "order.updated",
        "order.status_changed",
        "order.confirmed",
        "order.fulfilled",
        "order.paid",
        "order.cancelled",
        "contract.created",
        "contract.updated",
        "contract.status_changed",
        "contract.sent",
        "contract.signed",
        "contract.activated",
        "contract.expired",
        "contract.terminated",
        "contract.renewal_due",
        "contract.document_rendered",
        "webhook.disabled",
    }
)

# From this many events a commit writes them with COPY (a batch's, an import chunk's): it costs
# a round trip more than an INSERT and a quarter of the INSERT's encoding per row.
_COPY_FROM: Final = 50
_PENDING_KEY = "rapport.pending_events"
_WRITTEN_KEY = "rapport.events_written"
_SAVEPOINTS_KEY = "rapport.event_savepoints"

_ADVANCE_STREAM = text(
    "INSERT INTO event_streams (organization_id, position) VALUES (:organization_id, :count) "
    "ON CONFLICT (organization_id) DO UPDATE SET position = event_streams.position + excluded.position "
    "RETURNING position"
)


@dataclass(frozen=True, slots=True)
class Actor:
    type: str
    id: uuid.UUID | None

    @classmethod
    def of(cls, principal: Principal) -> Actor:
        return cls(principal.kind, principal.id)


SYSTEM: Final = Actor("system", None)


def pattern_matches(pattern: str, event_type: str) -> bool:
    """`*` matches everything, `contact.*` every contact event, anything else itself."""
    if pattern == "*":
        return True
    if pattern.endswith(".*"):
        return event_type.startswith(pattern[:-1])
    return pattern == event_type


def unknown_patterns(patterns: Iterable[str]) -> list[str]:
    """The patterns that match no event type in the catalogue (most likely typos)."""
    return [p for p in patterns if not any(pattern_matches(p, known) for known in EVENT_TYPES)]


def emit(
    session: AsyncSession,
    *,
    organization_id: uuid.UUID,
    type: str,
    entity_type: str,
    entity_id: uuid.UUID,
    data: Mapping[str, Any],
    actor: Actor,
    changes: Mapping[str, Any] | None = None,
) -> None:
    """Queues an event; it is written if, and only if, the session's transaction commits."""
    if type not in EVENT_TYPES:
        raise ValueError(f"unknown event type {type!r}: add it to EVENT_TYPES")
    session.info.setdefault(_PENDING_KEY, []).append(
        {
            "organization_id": organization_id,
            "id": new_id(),
            "type": type,
            "entity_type": entity_type,
            "entity_id": entity_id,
            "actor_type": actor.type,
            "actor_id": actor.id,
            "request_id": request_id_var.get(),
            "data": dict(data),
            "changes": dict(changes) if changes is not None else None,
        }
    )


@event.listens_for(Session, "after_transaction_create")
def _mark_savepoint(session: Session, transaction: SessionTransaction) -> None:
    """Remembers where a savepoint's events start, so that rolling it back drops only those."""
    if transaction.nested:
        session.info.setdefault(_SAVEPOINTS_KEY, {})[transaction] = len(session.info.get(_PENDING_KEY, ()))


@event.listens_for(Session, "before_commit")
def _write_pending_events(session: Session) -> None:
    # SQLAlchemy calls this when a savepoint is released too. Events wait for the outermost commit:
    # writing them takes the organisation's stream row lock, which would otherwise be held from a
    # batch's first record (or an import chunk's first row) until its commit, and every other
    # write of the organisation would wait for it.
    if session.in_nested_transaction():
        return
    pending: list[dict[str, Any]] | None = session.info.pop(_PENDING_KEY, None)
    if not pending:
        return
    by_organization: dict[uuid.UUID, list[dict[str, Any]]] = {}
    for row in pending:
        by_organization.setdefault(row["organization_id"], []).append(row)
    now = utcnow()
    # Sorted, so two transactions touching the same organisations lock their streams in one order.
    for organization_id in sorted(by_organization):
        rows = by_organization[organization_id]
        last = session.execute(_ADVANCE_STREAM, {"organization_id": organization_id, "count": len(rows)}).scalar_one()
        for offset, row in enumerate(rows):
            row["position"] = last - len(rows) + 1 + offset
            row["occurred_at"] = now
    if len(pending) >= _COPY_FROM:
        copy_rows_in_orm_event(session, Event, pending)
    else:
        session.execute(insert(Event), pending)
    session.info[_WRITTEN_KEY] = True


def wake_relay_after_commit(session: AsyncSession) -> None:
    """For changes that give the relay work without an event (a delivery retried by hand)."""
    session.info[_WRITTEN_KEY] = True


@event.listens_for(Session, "after_transaction_end")
def _forget_unwritten_events(session: Session, transaction: SessionTransaction) -> None:
    """A savepoint that ends unreleased drops the events emitted since it began; the outermost
    transaction's end drops whatever it did not write. The end, not the rollback: a savepoint whose
    flush failed was rolled back by SQLAlchemy inside the flush and is then only closed, and a
    session closed without a rollback ends its transaction too."""
    if transaction.nested:
        # A released savepoint's mark is gone already (`_announce_written_events`).
        start = session.info.get(_SAVEPOINTS_KEY, {}).pop(transaction, None)
        if start is not None and (pending := session.info.get(_PENDING_KEY)):
            del pending[start:]
    elif transaction.parent is None:
        for key in (_PENDING_KEY, _WRITTEN_KEY, _SAVEPOINTS_KEY):
            session.info.pop(key, None)


@event.listens_for(Session, "after_commit")
def _announce_written_events(session: Session) -> None:
    if (savepoint := session.get_nested_transaction()) is not None:
        # A savepoint released: its events now belong to the transaction around it.
        session.info.get(_SAVEPOINTS_KEY, {}).pop(savepoint, None)
        return
    if session.info.get(_PENDING_KEY):
        # Only a commit of the outermost transaction while a savepoint is still open gets here.
        log.error("events_lost", count=len(session.info.pop(_PENDING_KEY)))
    if session.info.pop(_WRITTEN_KEY, False):
        for listener in tuple(_commit_listeners):
            listener()


# What this process does after committing events (wake the relay): one listener per part of the
# process that enqueues (the API's lifespan, the worker), added at start-up, removed at shutdown.
_commit_listeners: set[Callable[[], None]] = set()


def add_commit_listener(listener: Callable[[], None]) -> None:
    _commit_listeners.add(listener)


def remove_commit_listener(listener: Callable[[], None]) -> None:
    _commit_listeners.discard(listener)


RELAY_JOB: Final = "relay_events"
RELAY_JOB_ID: Final = "rapport:relay"
RELAY_FOLLOW_UP_JOB_ID: Final = "rapport:relay:follow-up"
RELAY_WAKE_FLAG: Final = "rapport:relay:wake"


class RelayWaker:
    """Turns commits into relay jobs, many commits into one job.

    `wake` only sets a flag; one task per process enqueues. The relay job has a fixed id, so
    while it runs further enqueues are refused by arq: the flag in Redis tells the running job
    to look again, and a follow-up job half a second later covers a commit that lands just as
    the job ends.
    """

    def __init__(self, redis: Any, *, queue_name: str) -> None:
        self._redis = redis
        self._queue_name = queue_name
        self._wanted = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None

    def wake(self) -> None:
        self._wanted.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="relay-waker")

    async def stop(self) -> None:
        """Lets an enqueue under way finish: cancelled inside redis-py's pool it can leave the
        pool's lock held, and closing the pool then waits for ever."""
        if self._task is None:
            return
        self._stopping = True
        self._wanted.set()
        try:
            await asyncio.wait_for(asyncio.shield(self._task), timeout=5)
        except TimeoutError:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        while True:
            await self._wanted.wait()
            self._wanted.clear()
            if self._stopping:
                return
            try:
                await self.enqueue()
            except Exception as exc:  # noqa: BLE001 - the sweep relays the events anyway
                log.warning("relay_wake_failed", error=str(exc))

    async def enqueue(self) -> None:
        await self._redis.set(RELAY_WAKE_FLAG, b"1", ex=60)
        job = await self._redis.enqueue_job(RELAY_JOB, _job_id=RELAY_JOB_ID, _queue_name=self._queue_name)
        if job is None:
            await self._redis.enqueue_job(
                RELAY_JOB, _job_id=RELAY_FOLLOW_UP_JOB_ID, _queue_name=self._queue_name, _defer_by=0.5
            )
