"""The mail outbox: e-mails queued in the transaction that calls for them, and the sender that
delivers them over SMTP (DESIGN.md §5).

Queueing is exactly once because it is a row written with the change (a reminder's message is
written with the claim of its due task and its `task.due` event). Sending follows the webhook
relay's shape, so any number of senders can run at once:

* a message is claimed with a lease (`sending`, `next_attempt_at` = when the lease ends, a token)
  and the claim is committed before anything is sent, so two senders never send it both;
* the outcome is written only if the token still matches: sent, a retry after a backoff, or
  failed for good once `smtp_max_attempts` attempts have been made (the error is kept);
* a sender that dies mid-send leaves the lease to run out, and the message is sent again. SMTP
  itself cannot be exactly-once (the server may have accepted the message before the sender
  died), so messages are sent at least once, and a resend carries the same Message-ID.

Attempts are counted when a message is claimed, so one that kills its senders still ends.
The sender reads across organisations, as the relay does; every statement names rows by their
`(organization_id, id)` keys.
"""

from __future__ import annotations

import random
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core import mail, retries
from app.core.enums import MailStatus
from app.core.ids import new_id
from app.core.pagination import Keyset, Page
from app.core.principal import Principal
from app.core.repository import TenantRepository
from app.core.settings import Settings
from app.models.base import utcnow
from app.models.mail import MailMessage

LABEL: Final = "mail message"
# Waits after the 1st, 2nd, … failed attempt (the last repeats): with the default eight attempts,
# a message is given up about a day after it was queued. A reminder later than that is no use.
RETRY_DELAYS: Final = (60, 300, 900, 3600, 10800, 21600, 43200)
# A lease covers connecting and sending (each ends at the timeout) and writing the outcome.
_LEASE_TIMEOUTS: Final = 3
_OPEN: Final = MailMessage.status.in_((MailStatus.pending, MailStatus.sending))
_NEWEST_FIRST: Final = Keyset.of([], MailMessage.id, id_descending=True)


def queue_message(
    session: AsyncSession,
    settings: Settings,
    *,
    organization_id: uuid.UUID,
    task_id: uuid.UUID,
    recipient: str,
    subject: str,
    body_text: str,
) -> MailMessage:
    """Adds a message to the outbox in the session's transaction; it goes out once that commits."""
    if settings.smtp_from_address is None:
        raise ValueError("mail is not configured: no sender address")
    mail_id, now = new_id(), utcnow()
    message = MailMessage(
        organization_id=organization_id,
        id=mail_id,
        task_id=task_id,
        recipient=recipient,
        # A header is one line: a title's line breaks become spaces.
        subject=" ".join(subject.split()),
        body_text=body_text,
        message_id=mail.message_id(mail_id, settings.smtp_from_address),
        status=MailStatus.pending,
        attempts=0,
        next_attempt_at=now,
        created_at=now,
    )
    session.add(message)
    return message


@dataclass(frozen=True, slots=True)
class _Claimed:
    organization_id: uuid.UUID
    id: uuid.UUID
    token: uuid.UUID
    attempts: int
    recipient: str
    subject: str
    body_text: str
    message_id: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class _Outcome:
    claimed: _Claimed
    attempted_at: datetime
    error: str | None = None
    # The server could not be reached (or dropped the session), rather than refusing this message.
    unreachable: bool = False


@dataclass(slots=True)
class SendReport:
    sent: int = 0
    retrying: int = 0
    failed: int = 0


async def _claim(session: AsyncSession, settings: Settings, *, lease_seconds: float) -> _Claimed | None:
    """Leases the message due longest ago, if any. The row lock decides between concurrent
    senders: a row another one holds is skipped, and the WHERE is checked again on the locked row.
    The choice is a materialised CTE, evaluated once: as an `IN (…)` subquery PostgreSQL may run it
    again when it rechecks a row another sender changed, and then lease a second message.
    A lease that ran out on the last allowed attempt is not taken up: that would be one attempt
    too many (the next run's `_give_up_abandoned` fails the message)."""
    due = (
        _OPEN
        & (MailMessage.next_attempt_at <= func.now())
        & ((MailMessage.status == MailStatus.pending) | (MailMessage.attempts < settings.smtp_max_attempts))
    )
    chosen = (
        select(MailMessage.organization_id, MailMessage.id)
        .where(due)
        .order_by(MailMessage.next_attempt_at)
        .limit(1)
        .with_for_update(skip_locked=True)
        .cte("chosen")
        .prefix_with("MATERIALIZED")
    )
    token = uuid.uuid4()
    row = (
        await session.execute(
            update(MailMessage)
            .where(MailMessage.organization_id == chosen.c.organization_id, MailMessage.id == chosen.c.id, due)
            .values(
                status=MailStatus.sending,
                claim_token=token,
                attempts=MailMessage.attempts + 1,
                next_attempt_at=func.now() + timedelta(seconds=lease_seconds),
            )
            .returning(
                MailMessage.organization_id,
                MailMessage.id,
                MailMessage.attempts,
                MailMessage.recipient,
                MailMessage.subject,
                MailMessage.body_text,
                MailMessage.message_id,
                MailMessage.created_at,
            )
        )
    ).one_or_none()
    if row is None:
        return None
    return _Claimed(
        organization_id=row.organization_id,
        id=row.id,
        token=token,
        attempts=row.attempts,
        recipient=row.recipient,
        subject=row.subject,
        body_text=row.body_text,
        message_id=row.message_id,
        created_at=row.created_at,
    )


async def _give_up_abandoned(session: AsyncSession, settings: Settings) -> None:
    """Fails the messages whose last allowed attempt ended with its sender gone (the lease ran out
    with no outcome written): claiming them again would start an attempt past the limit."""
    await session.execute(
        update(MailMessage)
        .where(
            MailMessage.status == MailStatus.sending,
            MailMessage.next_attempt_at <= func.now(),
            MailMessage.attempts >= settings.smtp_max_attempts,
        )
        .values(
            status=MailStatus.failed,
            next_attempt_at=None,
            claim_token=None,
            last_error="the sender stopped during the last attempt",
        )
    )


async def _record(session: AsyncSession, outcome: _Outcome, settings: Settings, rng: random.Random) -> MailStatus:
    """Writes an attempt's outcome, unless the lease was lost (then another sender has the message)."""
    claimed = outcome.claimed
    if outcome.error is None:
        status, next_attempt_at = MailStatus.sent, None
    elif claimed.attempts >= settings.smtp_max_attempts:
        status, next_attempt_at = MailStatus.failed, None
    else:
        wait = retries.backoff_seconds(RETRY_DELAYS, claimed.attempts, rng)
        status, next_attempt_at = MailStatus.pending, outcome.attempted_at + timedelta(seconds=wait)
    await session.execute(
        update(MailMessage)
        .where(
            MailMessage.organization_id == claimed.organization_id,
            MailMessage.id == claimed.id,
            MailMessage.claim_token == claimed.token,
        )
        .values(
            status=status,
            next_attempt_at=next_attempt_at,
            claim_token=None,
            last_attempt_at=outcome.attempted_at,
            last_error=outcome.error,
            sent_at=outcome.attempted_at if status is MailStatus.sent else None,
        )
    )
    return status


async def send_due(
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    *,
    budget_seconds: float,
    rng: random.Random | None = None,
) -> SendReport:
    """Sends due messages one at a time over one SMTP session, until none is due or the budget is
    spent; each outcome is written, and the next message claimed, in one transaction. A server
    that cannot be reached ends the run after the message that found it so: the others would
    fail alike, and the next run tries again."""
    report = SendReport()
    if not settings.mail_enabled:
        return report
    rng = rng or random.Random()
    lease_seconds = settings.smtp_timeout_seconds * _LEASE_TIMEOUTS
    deadline = time.monotonic() + budget_seconds
    server = mail.MailServer(settings)
    outcome: _Outcome | None = None
    async with sessions() as session, session.begin():
        await _give_up_abandoned(session, settings)
    try:
        while True:
            async with sessions() as session, session.begin():
                status = await _record(session, outcome, settings, rng) if outcome is not None else None
                claimed = (
                    await _claim(session, settings, lease_seconds=lease_seconds)
                    if time.monotonic() < deadline
                    else None
                )
            if status is MailStatus.sent:
                report.sent += 1
            elif status is MailStatus.pending:
                report.retrying += 1
            elif status is MailStatus.failed:
                report.failed += 1
            if claimed is None:
                return report
            outcome = await _send(server, settings, claimed)
            if outcome.unreachable:
                deadline = 0.0
    finally:
        await server.close()


async def _send(server: mail.MailServer, settings: Settings, claimed: _Claimed) -> _Outcome:
    attempted_at = utcnow()
    try:
        message = mail.compose(
            settings,
            recipient=claimed.recipient,
            subject=claimed.subject,
            body_text=claimed.body_text,
            message_id=claimed.message_id,
            written_at=claimed.created_at,
        )
    except ValueError as error:
        return _Outcome(claimed, attempted_at, error=f"the message cannot be written: {error}"[: mail.MAX_ERROR_CHARS])
    try:
        await server.send(message)
    except mail.ConnectionFailed as failure:
        return _Outcome(claimed, attempted_at, error=failure.reason, unreachable=True)
    except mail.MessageRefused as refusal:
        return _Outcome(claimed, attempted_at, error=refusal.reason)
    return _Outcome(claimed, attempted_at)


def _messages(session: AsyncSession, principal: Principal) -> TenantRepository[MailMessage]:
    return TenantRepository(MailMessage, session, principal, label=LABEL)


async def find_mail_messages(
    session: AsyncSession,
    principal: Principal,
    *,
    status: MailStatus | None,
    task_id: uuid.UUID | None,
    cursor: str | None,
    limit: int,
) -> Page[MailMessage]:
    """The organisation's outgoing messages, newest first."""
    repository = _messages(session, principal)
    statement = repository.scoped()
    if status is not None:
        statement = statement.where(MailMessage.status == status)
    if task_id is not None:
        statement = statement.where(MailMessage.task_id == task_id)
    return await repository.page(statement, _NEWEST_FIRST, cursor=cursor, limit=limit)


async def get_mail_message(session: AsyncSession, principal: Principal, mail_id: uuid.UUID) -> MailMessage:
    return await _messages(session, principal).get(mail_id)
