"""Reminder e-mails: queued once with the `task.due` claim, sent through a real SMTP server
(aiosmtpd on 127.0.0.1) once even by concurrent senders, retried with backoff, given up after the
last attempt, and shown to admins per organisation."""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.enums import MailStatus
from app.core.settings import Settings
from app.jobs.mail import send_mail
from app.jobs.tasks import announce_due_tasks
from app.models.mail import MailMessage
from app.services import mail as mail_service
from app.services import tasks as task_service
from tests.helpers import Tenant, add_api_key, add_user, assert_problem, create, error_locs
from tests.mailserver import Mailbox, start_mailbox

TASKS = "/api/v1/tasks"
MAIL = "/api/v1/mail-messages"
SENDER = "reminders@rapport.example"


def _ago(hours: float) -> str:
    return (datetime.now(UTC) - timedelta(hours=hours)).isoformat()


def _mail_settings(settings: Settings, port: int, **overrides: Any) -> Settings:
    return settings.model_copy(
        update={
            "smtp_host": "127.0.0.1",
            "smtp_port": port,
            "smtp_security": "none",
            "smtp_from_address": SENDER,
            "smtp_from_name": "Rapport 提醒",
            "smtp_timeout_seconds": 5.0,
            "smtp_max_attempts": 3,
        }
        | overrides
    )


@pytest.fixture
async def mailbox() -> AsyncIterator[Mailbox]:
    found, server = await start_mailbox()
    try:
        yield found
    finally:
        server.close()
        await server.wait_closed()


@pytest.fixture
async def quiet_outbox(app: Any, settings: Settings) -> None:
    """Announces (without mail) the due tasks other tests left, and closes the messages they left
    open: the sweep and the sender read across organisations, and these tests count what they do."""
    sessions = app.state.session_factory
    await task_service.announce_due(sessions, settings)
    async with sessions() as session, session.begin():
        await session.execute(
            update(MailMessage)
            .where(MailMessage.status.in_((MailStatus.pending, MailStatus.sending)))
            .values(status=MailStatus.failed, next_attempt_at=None)
        )


@pytest.fixture
def ctx(app: Any, settings: Settings, mailbox: Mailbox, quiet_outbox: None) -> dict[str, Any]:
    """A worker's job context, with mail sent to the test's SMTP server."""
    return {"sessions": app.state.session_factory, "settings": _mail_settings(settings, mailbox.port)}


async def _task(client: httpx.AsyncClient, headers: dict[str, str], **body: Any) -> dict[str, Any]:
    return await create(client, TASKS, headers, **({"title": "回访客户", "due_at": _ago(1)} | body))


async def _messages(db: AsyncSession, organization_id: str) -> list[MailMessage]:
    found = await db.scalars(
        select(MailMessage)
        .where(MailMessage.organization_id == uuid.UUID(organization_id))
        .order_by(MailMessage.created_at, MailMessage.id)
        .execution_options(populate_existing=True)
    )
    return list(found)


async def _make_due_now(db: AsyncSession, organization_id: str) -> None:
    """Time passes: the organisation's pending messages become due (behind the sender's back)."""
    await db.execute(
        update(MailMessage)
        .where(MailMessage.organization_id == uuid.UUID(organization_id), MailMessage.status == MailStatus.pending)
        .values(next_attempt_at=text("now()"))
    )
    await db.commit()


async def _due_events(client: httpx.AsyncClient, tenant: Tenant) -> list[str]:
    response = await client.get("/api/v1/events", headers=tenant.headers, params={"type": "task.due", "limit": 500})
    assert response.status_code == 200, response.text
    return [event["entity_id"] for event in response.json()["items"]]


async def test_a_due_task_mails_its_assignee_once(
    client: httpx.AsyncClient, tenant: Tenant, ctx: dict[str, Any], mailbox: Mailbox, db: AsyncSession
) -> None:
    contact = await create(client, "/api/v1/contacts", tenant.headers, first_name="伟", last_name="张")
    company = await create(client, "/api/v1/companies", tenant.headers, name="天元贸易")
    deal = await create(client, "/api/v1/deals", tenant.headers, name="ERP 升级")
    task = await _task(
        client,
        tenant.headers,
        kind="call",
        title="回访王总：确认报价",
        description="带上新报价单",
        due_at="2026-01-05T10:30:00+08:00",
        contact_id=contact["id"],
        company_id=company["id"],
        deal_id=deal["id"],
    )

    assert await announce_due_tasks(ctx) >= 1
    [queued] = await _messages(db, tenant.organization_id)
    assert queued.status is MailStatus.pending and queued.attempts == 0
    assert str(queued.task_id) == task["id"] and queued.recipient == tenant.email
    assert queued.message_id == f"<{queued.id}@rapport.example>"
    assert await _due_events(client, tenant) == [task["id"]]

    assert (await send_mail(ctx))["sent"] >= 1
    [delivered] = mailbox.to(tenant.email)
    assert delivered.mail_from == SENDER
    message = delivered.message
    assert message["To"] == tenant.email
    assert message["Subject"] == "Task due: 回访王总：确认报价"
    assert message["Message-ID"] == queued.message_id
    assert message["From"].addresses[0].display_name == "Rapport 提醒"
    assert message["Auto-Submitted"] == "auto-generated"
    body = message.get_content()
    for expected in (
        "回访王总：确认报价",
        "Kind: call",
        "Due: 2026-01-05 02:30 UTC",
        "Contact: 张伟",
        "Company: 天元贸易",
    ):
        assert expected in body
    assert "Deal: ERP 升级" in body and "带上新报价单" in body and task["id"] in body

    [sent] = await _messages(db, tenant.organization_id)
    assert sent.status is MailStatus.sent and sent.attempts == 1 and sent.sent_at is not None
    assert sent.next_attempt_at is None and sent.last_error is None and sent.claim_token is None

    # Nothing is queued or sent twice.
    await announce_due_tasks(ctx)
    await send_mail(ctx)
    assert len(mailbox.to(tenant.email)) == 1
    assert len(await _messages(db, tenant.organization_id)) == 1


async def test_concurrent_sweeps_and_senders_mail_each_task_once(
    client: httpx.AsyncClient, tenant: Tenant, ctx: dict[str, Any], mailbox: Mailbox, db: AsyncSession
) -> None:
    tasks = [await _task(client, tenant.headers, title=f"到期 {n}", due_at=_ago(1 + n)) for n in range(6)]
    # Four sweeps at once, as several workers would run the cron job (arq #196).
    await asyncio.gather(*(task_service.announce_due(ctx["sessions"], ctx["settings"], batch_size=2) for _ in range(4)))
    queued = await _messages(db, tenant.organization_id)
    assert sorted(str(m.task_id) for m in queued) == sorted(t["id"] for t in tasks)

    # Three senders at once, each on its own connections and SMTP session.
    reports = await asyncio.gather(
        *(mail_service.send_due(ctx["sessions"], ctx["settings"], budget_seconds=30) for _ in range(3))
    )
    assert sum(report.sent for report in reports) == len(tasks)
    delivered = mailbox.to(tenant.email)
    assert sorted(d.message["Message-ID"] for d in delivered) == sorted(m.message_id for m in queued)
    assert {m.status for m in await _messages(db, tenant.organization_id)} == {MailStatus.sent}


async def test_a_refused_message_is_retried_with_backoff_then_given_up(
    client: httpx.AsyncClient, tenant: Tenant, ctx: dict[str, Any], mailbox: Mailbox, db: AsyncSession
) -> None:
    mailbox.refusal = "550 5.1.1 Mailbox unavailable"
    await _task(client, tenant.headers)
    await announce_due_tasks(ctx)

    waits = []
    for attempt in (1, 2):
        before = datetime.now(UTC)
        report = await send_mail(ctx)
        assert report["retrying"] == 1 and report["sent"] == 0
        [message] = await _messages(db, tenant.organization_id)
        assert message.status is MailStatus.pending and message.attempts == attempt
        assert message.last_error == "550 5.1.1 Mailbox unavailable"
        assert message.next_attempt_at is not None
        waits.append((message.next_attempt_at - before).total_seconds())
        # Not due yet: a run now leaves it alone.
        assert (await send_mail(ctx))["retrying"] == 0
        await _make_due_now(db, tenant.organization_id)
    assert mail_service.RETRY_DELAYS[0] * 0.9 - 1 <= waits[0] <= mail_service.RETRY_DELAYS[0] * 1.1
    assert mail_service.RETRY_DELAYS[1] * 0.9 - 1 <= waits[1] <= mail_service.RETRY_DELAYS[1] * 1.1

    # The third attempt is the last (smtp_max_attempts = 3): failed for good, the error kept.
    assert (await send_mail(ctx))["failed"] == 1
    [message] = await _messages(db, tenant.organization_id)
    assert message.status is MailStatus.failed and message.attempts == 3
    assert message.next_attempt_at is None and message.last_error == "550 5.1.1 Mailbox unavailable"
    mailbox.refusal = None
    await send_mail(ctx)
    assert mailbox.to(tenant.email) == []


async def test_an_unreachable_server_is_tried_again_later(
    client: httpx.AsyncClient, tenant: Tenant, ctx: dict[str, Any], mailbox: Mailbox, db: AsyncSession
) -> None:
    for n in range(2):
        await _task(client, tenant.headers, title=f"任务 {n}")
    await announce_due_tasks(ctx)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    down = ctx | {"settings": _mail_settings(ctx["settings"], closed_port)}

    # The first message finds the server down; the run stops there rather than fail them all.
    assert await send_mail(down) == {"sent": 0, "retrying": 1, "failed": 0}
    first, second = sorted(await _messages(db, tenant.organization_id), key=lambda m: m.attempts, reverse=True)
    assert first.status is MailStatus.pending and first.attempts == 1
    assert first.last_error is not None and first.next_attempt_at is not None
    assert first.next_attempt_at > datetime.now(UTC) + timedelta(seconds=30)
    assert second.status is MailStatus.pending and second.attempts == 0

    # The server is back: the waiting message goes, and the retry at its time.
    assert (await send_mail(ctx))["sent"] == 1
    await _make_due_now(db, tenant.organization_id)
    assert (await send_mail(ctx))["sent"] == 1
    assert len(mailbox.to(tenant.email)) == 2
    assert {m.status for m in await _messages(db, tenant.organization_id)} == {MailStatus.sent}


async def test_a_message_whose_sender_died_is_sent_again_with_the_same_message_id(
    client: httpx.AsyncClient, tenant: Tenant, ctx: dict[str, Any], mailbox: Mailbox, db: AsyncSession
) -> None:
    await _task(client, tenant.headers)
    await announce_due_tasks(ctx)
    await send_mail(ctx)
    [message] = await _messages(db, tenant.organization_id)
    # A sender leased the message, the server accepted it, and the sender died before writing
    # that down: the lease runs out and the message goes again (at least once).
    await db.execute(
        update(MailMessage)
        .where(MailMessage.organization_id == message.organization_id, MailMessage.id == message.id)
        .values(status=MailStatus.sending, claim_token=uuid.uuid4(), next_attempt_at=text("now()"), sent_at=None)
    )
    await db.commit()
    assert (await send_mail(ctx))["sent"] == 1
    first, again = mailbox.to(tenant.email)
    assert first.message["Message-ID"] == again.message["Message-ID"] == message.message_id
    assert first.content == again.content
    [resent] = await _messages(db, tenant.organization_id)
    assert resent.status is MailStatus.sent and resent.attempts == 2

    # A sender that dies during the last allowed attempt: the message is given up, not sent again.
    await db.execute(
        update(MailMessage)
        .where(MailMessage.organization_id == message.organization_id, MailMessage.id == message.id)
        .values(status=MailStatus.sending, attempts=3, claim_token=uuid.uuid4(), next_attempt_at=text("now()"))
    )
    await db.commit()
    assert (await send_mail(ctx))["sent"] == 0
    [abandoned] = await _messages(db, tenant.organization_id)
    assert abandoned.status is MailStatus.failed and abandoned.next_attempt_at is None
    assert abandoned.last_error == "the sender stopped during the last attempt"
    assert len(mailbox.to(tenant.email)) == 2


# Plain-text sign-in is what the loopback test server offers; production servers use TLS.
@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
async def test_signing_in_to_the_server(
    client: httpx.AsyncClient, tenant: Tenant, ctx: dict[str, Any], db: AsyncSession
) -> None:
    guarded, server = await start_mailbox(login=("rapport", "s3cret"))
    try:
        await _task(client, tenant.headers)
        await announce_due_tasks(ctx)

        anonymous = ctx | {"settings": _mail_settings(ctx["settings"], guarded.port)}
        assert (await send_mail(anonymous))["retrying"] == 1
        [message] = await _messages(db, tenant.organization_id)
        assert message.last_error is not None and message.last_error.startswith("530")
        await _make_due_now(db, tenant.organization_id)
        login = {"smtp_username": "rapport", "smtp_password": SecretStr("s3cret")}
        right = ctx | {"settings": _mail_settings(ctx["settings"], guarded.port, **login)}
        assert (await send_mail(right))["sent"] == 1
        assert len(guarded.to(tenant.email)) == 1
    finally:
        server.close()
        await server.wait_closed()


async def test_without_smtp_nothing_is_queued(
    client: httpx.AsyncClient, tenant: Tenant, app: Any, settings: Settings, quiet_outbox: None, db: AsyncSession
) -> None:
    assert settings.smtp_host is None
    task = await _task(client, tenant.headers)
    plain = {"sessions": app.state.session_factory, "settings": settings}
    await announce_due_tasks(plain)
    assert await _due_events(client, tenant) == [task["id"]]
    assert await _messages(db, tenant.organization_id) == []
    assert await send_mail(plain) == {"sent": 0, "retrying": 0, "failed": 0}


async def test_tasks_without_an_active_assignee_get_the_event_but_no_mail(
    client: httpx.AsyncClient, tenant: Tenant, ctx: dict[str, Any], mailbox: Mailbox, db: AsyncSession
) -> None:
    key = await add_api_key(client, tenant, ["tasks:write"])
    unassigned = await _task(client, key, title="没有负责人")
    assert unassigned["assignee_id"] is None
    rep = await add_user(client, tenant, "sales")
    departed = await _task(client, tenant.headers, title="离职员工的任务", assignee_id=rep.user_id)
    response = await client.post(f"/api/v1/users/{rep.user_id}/deactivate", headers=tenant.headers)
    assert response.status_code == 200, response.text
    present = await _task(client, tenant.headers, title="在职员工的任务")

    await announce_due_tasks(ctx)
    assert sorted(await _due_events(client, tenant)) == sorted(t["id"] for t in (unassigned, departed, present))
    [only] = await _messages(db, tenant.organization_id)
    assert str(only.task_id) == present["id"] and only.recipient == tenant.email
    await send_mail(ctx)
    assert mailbox.to(rep.email) == []


async def test_admins_see_their_organisations_mail_only(
    client: httpx.AsyncClient,
    tenant: Tenant,
    other_tenant: Tenant,
    ctx: dict[str, Any],
    mailbox: Mailbox,
    db: AsyncSession,
) -> None:
    mine = await _task(client, tenant.headers, title="我的")
    theirs = await _task(client, other_tenant.headers, title="他们的")
    mailbox.refusal = "550 5.7.1 Relaying denied"
    await announce_due_tasks(ctx)
    await send_mail(ctx)
    [my_message] = await _messages(db, tenant.organization_id)
    [their_message] = await _messages(db, other_tenant.organization_id)
    assert str(their_message.task_id) == theirs["id"] and their_message.recipient == other_tenant.email

    listed = await client.get(MAIL, headers=tenant.headers)
    assert listed.status_code == 200, listed.text
    [item] = listed.json()["items"]
    assert item["id"] == str(my_message.id) and item["task_id"] == mine["id"]
    assert item["status"] == "pending" and item["attempts"] == 1
    assert item["last_error"] == "550 5.7.1 Relaying denied" and item["message_id"] == my_message.message_id
    one = await client.get(f"{MAIL}/{my_message.id}", headers=tenant.headers)
    assert one.status_code == 200 and one.json() == item
    assert_problem(await client.get(f"{MAIL}/{their_message.id}", headers=tenant.headers), 404)

    async def ids(**params: str) -> list[str]:
        response = await client.get(MAIL, headers=tenant.headers, params=params)
        assert response.status_code == 200, response.text
        return [m["id"] for m in response.json()["items"]]

    assert await ids(status="pending") == [str(my_message.id)]
    assert await ids(status="sent") == []
    assert await ids(task_id=mine["id"]) == [str(my_message.id)]
    assert await ids(task_id=theirs["id"]) == []
    assert error_locs(await client.get(MAIL, headers=tenant.headers, params={"status": "lost"})) == [
        ["query", "status"]
    ]

    manager = await add_user(client, tenant, "manager")
    assert_problem(await client.get(MAIL, headers=manager.headers), 403)
    reader = await add_api_key(client, tenant, ["mail:read"])
    assert (await client.get(f"{MAIL}/{my_message.id}", headers=reader)).status_code == 200
    assert_problem(await client.get(MAIL, headers=await add_api_key(client, tenant, ["tasks:read"])), 403)


async def test_deleting_a_task_drops_its_unsent_reminder(
    client: httpx.AsyncClient, tenant: Tenant, ctx: dict[str, Any], mailbox: Mailbox, db: AsyncSession
) -> None:
    task = await _task(client, tenant.headers)
    await announce_due_tasks(ctx)
    assert len(await _messages(db, tenant.organization_id)) == 1
    assert (await client.delete(f"{TASKS}/{task['id']}", headers=tenant.headers)).status_code == 204
    assert await _messages(db, tenant.organization_id) == []
    await send_mail(ctx)
    assert mailbox.to(tenant.email) == []
    assert await db.scalar(select(func.count()).select_from(MailMessage).where(MailMessage.task_id == task["id"])) == 0


async def test_a_last_attempt_whose_lease_runs_out_during_a_run_is_not_tried_again(
    client: httpx.AsyncClient, tenant: Tenant, ctx: dict[str, Any], mailbox: Mailbox, db: AsyncSession
) -> None:
    """The run gave up abandoned messages when it began; a lease that runs out later must not let
    the same run start an attempt past smtp_max_attempts."""
    await _task(client, tenant.headers, title="先到期", due_at=_ago(2))
    await announce_due_tasks(ctx)
    await _task(client, tenant.headers, title="最后一次")
    await announce_due_tasks(ctx)
    first, last = await _messages(db, tenant.organization_id)
    # Another sender's last attempt (smtp_max_attempts = 3), its lease ending a moment from now.
    await db.execute(
        update(MailMessage)
        .where(MailMessage.organization_id == last.organization_id, MailMessage.id == last.id)
        .values(
            status=MailStatus.sending,
            attempts=3,
            claim_token=uuid.uuid4(),
            next_attempt_at=text("now() + interval '1 second'"),
        )
    )
    await db.commit()
    # The first message takes longer than that to send.
    mailbox.delay = 2.0
    assert (await send_mail(ctx))["sent"] == 1
    assert [d.message["Message-ID"] for d in mailbox.to(tenant.email)] == [first.message_id]
    [_, abandoned] = await _messages(db, tenant.organization_id)
    assert abandoned.attempts == 3 and abandoned.status is MailStatus.sending

    assert (await send_mail(ctx))["sent"] == 0
    [_, abandoned] = await _messages(db, tenant.organization_id)
    assert abandoned.status is MailStatus.failed and abandoned.attempts == 3
