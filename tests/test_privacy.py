"""GET /contacts/{id}/personal-data and POST /contacts/{id}/erase."""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from aiohttp import web
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.references import references_to
from app.core.settings import Settings
from app.jobs.mail import send_mail
from app.jobs.tasks import announce_due_tasks
from app.models.idempotency import IdempotencyRecord
from app.services import exports, imports
from app.services.privacy_references import CONTACT_REFERENCES
from tests.helpers import Tenant, add_api_key, add_user, create
from tests.mailserver import Mailbox, start_mailbox
from tests.receiver import Received, Receiver

PERSON = {
    "first_name": "伟",
    "last_name": "张",
    "title": "采购经理",
    "email": "zhang.wei@example.cn",
    "phone": "138 0013 8000",
    "city": "上海",
    "country": "CN",
    "external_id": "ERP-9",
    "tags": ["vip"],
    "lifecycle_stage": "customer",
}


async def _person(client: httpx.AsyncClient, tenant: Tenant) -> dict[str, object]:
    headers = {**tenant.headers, "Idempotency-Key": str(uuid.uuid4())}
    created = await client.post("/api/v1/contacts", headers=headers, json=PERSON)
    assert created.status_code == 201
    contact = created.json()
    await client.patch(f"/api/v1/contacts/{contact['id']}", headers=tenant.headers, json={"title": "总监"})
    return contact  # type: ignore[no-any-return]


async def test_personal_data_holds_the_record_its_trail_and_events(client: httpx.AsyncClient, tenant: Tenant) -> None:
    contact = await _person(client, tenant)
    response = await client.get(f"/api/v1/contacts/{contact['id']}/personal-data", headers=tenant.headers)
    assert response.status_code == 200
    held = response.json()
    assert held["contact"]["email"] == "zhang.wei@example.cn"
    assert [a["action"] for a in held["audit"]] == ["create", "update"]
    assert [e["type"] for e in held["events"]] == ["contact.created", "contact.updated"]
    assert held["audit"][1]["changes"]["title"] == {"before": "采购经理", "after": "总监"}


async def test_erase_clears_the_person_everywhere_and_keeps_the_rest(
    client: httpx.AsyncClient, tenant: Tenant, db: AsyncSession
) -> None:
    contact = await _person(client, tenant)
    cid = contact["id"]
    erased = await client.post(f"/api/v1/contacts/{cid}/erase", headers=tenant.headers)
    assert erased.status_code == 200, erased.text
    after = erased.json()
    for field in ("first_name", "last_name", "title", "email", "phone", "city", "external_id", "full_name"):
        assert after[field] is None, field
    assert after["tags"] == [] and after["custom_fields"] == {}
    assert after["lifecycle_stage"] == "customer" and after["country"] == "CN"
    assert after["erased_at"] and after["archived_at"]

    held = (await client.get(f"/api/v1/contacts/{cid}/personal-data", headers=tenant.headers)).json()
    text = str(held)
    for secret in ("张", "zhang.wei", "8613800138000", "ERP-9", "采购经理", "总监", "上海"):
        assert secret not in text, secret
    assert [a["action"] for a in held["audit"]] == ["create", "update", "erase"]
    events = (await client.get("/api/v1/events", headers=tenant.headers, params={"entity_id": cid})).json()["items"]
    assert [e["type"] for e in events] == ["contact.created", "contact.updated", "contact.erased"]
    assert "zhang.wei" not in str(events) and "总监" not in str(events)
    found = await client.get("/api/v1/contacts", headers=tenant.headers, params={"q": "zhang", "archived": "true"})
    assert found.json()["items"] == []
    replays = await db.scalar(
        select(func.count())
        .select_from(IdempotencyRecord)
        .where(IdempotencyRecord.response_body.contains(cid.encode()))
    )
    assert replays == 0

    # Irreversible: no restore, no change, no second erase.
    assert (await client.post(f"/api/v1/contacts/{cid}/restore", headers=tenant.headers)).status_code == 409
    assert (
        await client.patch(f"/api/v1/contacts/{cid}", headers=tenant.headers, json={"title": "x"})
    ).status_code == 409
    assert (await client.post(f"/api/v1/contacts/{cid}/erase", headers=tenant.headers)).status_code == 409


async def test_erase_scrubs_the_names_e_mails_and_phones_the_person_had_before(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    contact = await create(
        client, "/api/v1/contacts", tenant.headers,
        first_name="Roberto", last_name="Oldname", email="roberto.old@hist.example", phone="+8613900000077",
    )  # fmt: skip
    task = await create(
        client, "/api/v1/tasks", tenant.headers,
        title="Call Roberto Oldname", description="roberto.old@hist.example / 139 0000 0077",
        contact_id=contact["id"],
    )  # fmt: skip
    renamed = await client.patch(
        f"/api/v1/contacts/{contact['id']}",
        headers=tenant.headers,
        json={"last_name": "Newname", "email": "roberto.new@hist.example", "phone": "+8613900000088"},
    )
    assert renamed.status_code == 200, renamed.text
    erased = await client.post(f"/api/v1/contacts/{contact['id']}/erase", headers=tenant.headers)
    assert erased.status_code == 200, erased.text
    scrubbed = (await client.get(f"/api/v1/tasks/{task['id']}", headers=tenant.headers)).json()
    assert scrubbed["title"] == "Call (erased)"
    assert scrubbed["description"] == "(erased) / (erased)"
    trail = await client.get("/api/v1/audit-log", headers=tenant.headers, params={"entity_id": task["id"]})
    assert "Oldname" not in trail.text and "roberto.old" not in trail.text and "0000 0077" not in trail.text


async def test_a_merged_contact_is_erased_through_its_survivor(client: httpx.AsyncClient, tenant: Tenant) -> None:
    survivor = await create(client, "/api/v1/contacts", tenant.headers, first_name="Xonly")
    twin = await create(
        client, "/api/v1/contacts", tenant.headers, first_name="Y", last_name="Yfamily", email="yperson@er.example"
    )
    merged = await client.post(
        f"/api/v1/contacts/{survivor['id']}/merge", headers=tenant.headers, json={"merge_ids": [twin["id"]]}
    )
    assert merged.status_code == 200, merged.text
    refused = await client.post(f"/api/v1/contacts/{twin['id']}/erase", headers=tenant.headers)
    assert refused.status_code == 409 and survivor["id"] in refused.json()["detail"]
    erased = await client.post(f"/api/v1/contacts/{survivor['id']}/erase", headers=tenant.headers)
    assert erased.status_code == 200, erased.text
    held = await client.get(f"/api/v1/contacts/{survivor['id']}/personal-data", headers=tenant.headers)
    assert "yperson" not in held.text and "Yfamily" not in held.text


async def test_erase_honours_if_match_and_permissions(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    contact = await _person(client, tenant)
    cid = contact["id"]
    stale = await client.post(f"/api/v1/contacts/{cid}/erase", headers={**tenant.headers, "If-Match": 'W/"1"'})
    assert stale.status_code == 412
    manager = await add_user(client, tenant, "manager")
    assert (await client.post(f"/api/v1/contacts/{cid}/erase", headers=manager.headers)).status_code == 403
    assert (await client.get(f"/api/v1/contacts/{cid}/personal-data", headers=manager.headers)).status_code == 403
    for call in (
        client.post(f"/api/v1/contacts/{cid}/erase", headers=other_tenant.headers),
        client.get(f"/api/v1/contacts/{cid}/personal-data", headers=other_tenant.headers),
    ):
        assert (await call).status_code == 404
    key = await add_api_key(client, tenant, ["privacy:manage"])
    assert (await client.post(f"/api/v1/contacts/{cid}/erase", headers=key)).status_code == 200


async def test_every_reference_to_a_contact_is_exported_and_scrubbed_or_kept_for_a_reason(db: AsyncSession) -> None:
    """A table added later that refers to a contact (or to a record referring to one, as a reminder
    e-mail refers to a task) fails here until privacy_references says what becomes of it."""
    referring = {reference.name for reference in await references_to(db, "contacts")}
    assert referring == set(CONTACT_REFERENCES)
    for name, held in CONTACT_REFERENCES.items():
        assert held.kept, name
        table = name.split(".")[0]
        if table != "contacts":
            assert {reference.name for reference in await references_to(db, table)} == set(held.through), name


# The person's values as they may be written in free text (lower case: the check folds case).
SECRETS = ("张", "伟", "zhang", "13800138000", "138 0013 8000", "138-0013-8000")
# The follow-up of another contact of the organisation, written alike.
THE_OTHER_ONE = "跟进：王 芳"


@pytest.fixture
async def mailbox() -> AsyncIterator[Mailbox]:
    found, server = await start_mailbox()
    try:
        yield found
    finally:
        server.close()
        await server.wait_closed()


@pytest.fixture
def ctx(app: Any, settings: Settings, mailbox: Mailbox) -> dict[str, Any]:
    """A worker's job context, with reminder e-mails sent to the test's SMTP server."""
    mail = {
        "smtp_host": "127.0.0.1",
        "smtp_port": mailbox.port,
        "smtp_security": "none",
        "smtp_from_address": "reminders@rapport.example",
        "smtp_timeout_seconds": 5.0,
    }
    return {"sessions": app.state.session_factory, "settings": settings.model_copy(update=mail)}


def _ago(hours: float) -> str:
    return (datetime.now(UTC) - timedelta(hours=hours)).isoformat()


async def _held_text(db: AsyncSession, organization_id: str) -> dict[str, str]:
    """Every row the organisation holds, in every table with an organisation, as text."""
    tables = await db.scalars(
        text(
            "SELECT table_name FROM information_schema.columns "
            "WHERE table_schema = 'public' AND column_name = 'organization_id' ORDER BY table_name"
        )
    )
    held = {}
    for table in list(tables):
        rows = await db.scalars(
            text(f'SELECT t::text FROM "{table}" AS t WHERE organization_id = :organization_id'),
            {"organization_id": uuid.UUID(organization_id)},
        )
        held[table] = "\n".join(rows)
    return held


async def _scene(client: httpx.AsyncClient, tenant: Tenant, ctx: dict[str, Any]) -> dict[str, Any]:
    """A lead assigned by a rule (its follow-up task `跟进：张 伟`), a task naming the person by
    e-mail and phone whose reminder was mailed, an activity, a deal role, an order; and another
    contact with a follow-up of its own."""
    rep = await add_user(client, tenant, "sales", full_name="销售甲")
    await create(
        client, "/api/v1/assignment-rules", tenant.headers, name="全部", strategy="fixed_user", user_id=rep.user_id
    )
    contact = await create(client, "/api/v1/contacts", tenant.headers, **PERSON | {"lifecycle_stage": "lead"})
    other = await create(client, "/api/v1/contacts", tenant.headers, first_name="芳", last_name="王")
    call = await create(
        client,
        "/api/v1/tasks",
        tenant.headers,
        title="Call Zhang.Wei@example.cn back",
        description="张伟 asked to be called on +86 138-0013-8000, or 138 0013 8000 after six",
        contact_id=contact["id"],
        due_at=_ago(2),
    )
    assert await announce_due_tasks(ctx) >= 1
    assert (await send_mail(ctx))["sent"] >= 1
    # The follow-up falls due too; its reminder is still waiting when the person is erased.
    [follow_up] = [
        t
        for t in (
            await client.get("/api/v1/tasks", headers=tenant.headers, params={"contact_id": contact["id"]})
        ).json()["items"]
        if t["id"] != call["id"]
    ]
    patched = await client.patch(f"/api/v1/tasks/{follow_up['id']}", headers=tenant.headers, json={"due_at": _ago(1)})
    assert patched.status_code == 200, patched.text
    assert await announce_due_tasks(ctx) >= 1
    qualified = await client.patch(
        f"/api/v1/contacts/{contact['id']}", headers=tenant.headers, json={"lifecycle_stage": "sales_qualified"}
    )
    assert qualified.status_code == 200, qualified.text
    activity = await client.post(
        f"/api/v1/contacts/{contact['id']}/activities",
        headers=tenant.headers,
        json={"signal": "email_opened", "channel": "newsletter"},
    )
    assert activity.status_code == 201, activity.text
    deal = await create(
        client,
        "/api/v1/deals",
        tenant.headers,
        name="ERP 升级",
        contacts=[{"contact_id": contact["id"], "role": "决策人"}],
    )
    order = await create(
        client,
        "/api/v1/orders",
        tenant.headers,
        contact_id=contact["id"],
        line_items=[{"name": "年费", "quantity": "1", "unit_price": "1200.00"}],
        notes="开票抬头：张伟",
    )
    return {
        "rep": rep,
        "contact": contact,
        "other": other,
        "call": call,
        "follow_up": follow_up,
        "deal": deal,
        "order": order,
    }


async def test_personal_data_holds_every_record_about_the_person(
    client: httpx.AsyncClient, tenant: Tenant, ctx: dict[str, Any]
) -> None:
    scene = await _scene(client, tenant, ctx)
    response = await client.get(f"/api/v1/contacts/{scene['contact']['id']}/personal-data", headers=tenant.headers)
    assert response.status_code == 200, response.text
    held = response.json()
    assert sorted(t["title"] for t in held["tasks"]) == ["Call Zhang.Wei@example.cn back", "跟进：张 伟"]
    assert {m["task_id"] for m in held["reminder_mails"]} == {scene["call"]["id"], scene["follow_up"]["id"]}
    assert {m["status"] for m in held["reminder_mails"]} == {"sent", "pending"}
    assert all("Contact: 张伟" in m["body_text"] and "recipient" not in m for m in held["reminder_mails"])
    assert [(a["signal"], a["channel"]) for a in held["activities"]] == [("email_opened", "newsletter")]
    assert [(c["from_stage"], c["to_stage"]) for c in held["lifecycle_history"]][:1] == [("lead", "sales_qualified")]
    assert held["lead_score"] is not None and set(held["lead_score"]) == {"score", "grade", "scored_at"}
    assert held["deal_roles"] == [{"deal_id": scene["deal"]["id"], "deal_name": "ERP 升级", "role": "决策人"}]
    [order] = held["orders"]
    assert (order["id"], order["total"], order["notes"]) == (scene["order"]["id"], "1200.00", "开票抬头：张伟")
    assert held["merged_contacts"] == []


async def test_erase_scrubs_the_person_from_every_record_about_them(
    client: httpx.AsyncClient,
    tenant: Tenant,
    other_tenant: Tenant,
    ctx: dict[str, Any],
    mailbox: Mailbox,
    db: AsyncSession,
) -> None:
    scene = await _scene(client, tenant, ctx)
    cid = scene["contact"]["id"]
    # Another organisation holds the same text about a contact of its own.
    theirs = await create(client, "/api/v1/contacts", other_tenant.headers, **PERSON)
    their_task = await create(
        client, "/api/v1/tasks", other_tenant.headers, title="Call zhang.wei@example.cn", contact_id=theirs["id"]
    )
    for attempt in (
        client.post(f"/api/v1/contacts/{cid}/erase", headers=other_tenant.headers),
        client.post(f"/api/v1/contacts/{theirs['id']}/erase", headers=tenant.headers),
    ):
        assert (await attempt).status_code == 404

    erased = await client.post(f"/api/v1/contacts/{cid}/erase", headers=tenant.headers)
    assert erased.status_code == 200, erased.text

    held = await _held_text(db, tenant.organization_id)
    for table, rows in held.items():
        for secret in SECRETS:
            assert secret not in rows.lower(), (table, secret)

    # The text around the values is kept; so are the other contact's task and the aggregates.
    tasks = (await client.get("/api/v1/tasks", headers=tenant.headers, params={"contact_id": cid})).json()["items"]
    by_id = {t["id"]: t for t in tasks}
    assert by_id[scene["follow_up"]["id"]]["title"] == "跟进：(erased)"
    call = by_id[scene["call"]["id"]]
    assert call["title"] == "Call (erased) back" and call["version"] == scene["call"]["version"] + 1
    assert call["description"] == "(erased) asked to be called on (erased), or (erased) after six"
    others = (
        await client.get("/api/v1/tasks", headers=tenant.headers, params={"contact_id": scene["other"]["id"]})
    ).json()
    assert [t["title"] for t in others["items"]] == [THE_OTHER_ONE]
    after = (await client.get(f"/api/v1/contacts/{cid}/personal-data", headers=tenant.headers)).json()
    assert {m["status"] for m in after["reminder_mails"]} == {"sent", "pending"}
    assert all(m["subject"].startswith("Task due: ") for m in after["reminder_mails"])
    assert all("Contact: (erased)" in m["body_text"] for m in after["reminder_mails"])
    assert all(m["sent_at"] for m in after["reminder_mails"] if m["status"] == "sent")
    assert [a["signal"] for a in after["activities"]] == ["email_opened"]
    assert after["deal_roles"][0]["role"] == "决策人" and after["orders"][0]["notes"] == "开票抬头：(erased)"
    assert after["orders"][0]["total"] == "1200.00" and after["lifecycle_history"]

    # The erasure says what it scrubbed elsewhere, without a value.
    erasure = after["audit"][-1]
    assert erasure["action"] == "erase"
    scrubbed = erasure["changes"]["scrubbed_records"]["after"]
    assert scrubbed["tasks"] == 2 and scrubbed["mail_messages"] == 2 and scrubbed["orders"] == 1
    assert scrubbed["audit_log"] >= 3 and scrubbed["events"] >= 3

    # The reminder still pending goes out scrubbed.
    assert (await send_mail(ctx))["sent"] >= 1
    [reminder] = mailbox.to(scene["rep"].email)
    assert reminder.message["Subject"] == "Task due: 跟进：(erased)"
    assert "Contact: (erased)" in reminder.message.get_content()

    # Another organisation's identical text is not touched.
    their_tasks = (await client.get("/api/v1/tasks", headers=other_tenant.headers)).json()["items"]
    assert [t["title"] for t in their_tasks] == [their_task["title"]]


async def test_erase_reaches_the_duplicates_merged_into_the_contact_and_deleted_tasks(
    client: httpx.AsyncClient, tenant: Tenant, db: AsyncSession
) -> None:
    contact = await create(client, "/api/v1/contacts", tenant.headers, **PERSON)
    duplicate = await create(
        client, "/api/v1/contacts", tenant.headers, first_name="Wei", last_name="Zhang", email="wei.z@example.com"
    )
    dropped = await create(client, "/api/v1/tasks", tenant.headers, title="Mail Wei Zhang", contact_id=duplicate["id"])
    deleted = await client.delete(f"/api/v1/tasks/{dropped['id']}", headers=tenant.headers)
    assert deleted.status_code == 204, deleted.text
    kept = await create(
        client, "/api/v1/tasks", tenant.headers, title="Weibo: wei.z@example.com", contact_id=duplicate["id"]
    )
    merged = await client.post(
        f"/api/v1/contacts/{contact['id']}/merge", headers=tenant.headers, json={"merge_ids": [duplicate["id"]]}
    )
    assert merged.status_code == 200, merged.text

    held = (await client.get(f"/api/v1/contacts/{contact['id']}/personal-data", headers=tenant.headers)).json()
    assert [c["email"] for c in held["merged_contacts"]] == ["wei.z@example.com"]
    assert {a["entity_id"] for a in held["audit"]} == {contact["id"], duplicate["id"]}

    erased = await client.post(f"/api/v1/contacts/{contact['id']}/erase", headers=tenant.headers)
    assert erased.status_code == 200, erased.text
    twin = await client.get(f"/api/v1/contacts/{duplicate['id']}", headers=tenant.headers, follow_redirects=False)
    assert twin.status_code == 301
    held = await _held_text(db, tenant.organization_id)
    for table, rows in held.items():
        for secret in (*SECRETS, "wei.z@"):
            assert secret not in rows.lower(), (table, secret)
    after = (await client.get(f"/api/v1/tasks/{kept['id']}", headers=tenant.headers)).json()
    # A whole word only: `Weibo` is not the name `Wei`.
    assert after["title"] == "Weibo: (erased)"
    events = (await client.get("/api/v1/events", headers=tenant.headers, params={"type": "contact.erased"})).json()
    assert {e["entity_id"] for e in events["items"]} == {contact["id"], duplicate["id"]}


async def test_erase_succeeds_when_the_scrubbed_text_outgrows_its_column(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    """`(erased)` is longer than a one-character name: a text near its column's length still fits."""
    contact = await create(client, "/api/v1/contacts", tenant.headers, first_name="伟", last_name="张")
    description = "伟" + "。" * 1998 + "伟"
    task = await create(
        client, "/api/v1/tasks", tenant.headers, title="张" * 300, description=description, contact_id=contact["id"]
    )
    erased = await client.post(f"/api/v1/contacts/{contact['id']}/erase", headers=tenant.headers)
    assert erased.status_code == 200, erased.text
    after = (await client.get(f"/api/v1/tasks/{task['id']}", headers=tenant.headers)).json()
    assert len(after["title"]) == 300 and "张" not in after["title"]
    assert len(after["description"]) == 2000 and after["description"].startswith("(erased)。")


async def test_erase_leaves_punctuation_alone_when_a_name_is_only_punctuation(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    """A placeholder name (`.`, `-`) names nobody: amounts and times in the records about the
    person keep their dots and dashes."""
    contact = await create(client, "/api/v1/contacts", tenant.headers, first_name="Wei", last_name=".")
    order = await create(
        client,
        "/api/v1/orders",
        tenant.headers,
        contact_id=contact["id"],
        line_items=[{"name": "Licence", "quantity": "1", "unit_price": "1200.50"}],
        notes="Paid 1200.50 on 2026-11-30; ask Wei.",
    )
    erased = await client.post(f"/api/v1/contacts/{contact['id']}/erase", headers=tenant.headers)
    assert erased.status_code == 200, erased.text
    after = (await client.get(f"/api/v1/orders/{order['id']}", headers=tenant.headers)).json()
    assert after["notes"] == "Paid 1200.50 on 2026-11-30; ask (erased)."
    [created] = (await client.get("/api/v1/events", headers=tenant.headers, params={"entity_id": order["id"]})).json()[
        "items"
    ]
    assert created["data"]["total"] == "1200.50"


async def test_erase_leaves_another_organisations_stored_replies_alone(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant, db: AsyncSession
) -> None:
    contact = await create(client, "/api/v1/contacts", tenant.headers, first_name="伟", last_name="张")
    # Another organisation's reply that happens to hold the id (here as its own external id).
    theirs = {**other_tenant.headers, "Idempotency-Key": str(uuid.uuid4())}
    first = await client.post(
        "/api/v1/contacts", headers=theirs, json={"first_name": "X", "external_id": contact["id"]}
    )
    assert first.status_code == 201, first.text

    erased = await client.post(f"/api/v1/contacts/{contact['id']}/erase", headers=tenant.headers)
    assert erased.status_code == 200, erased.text
    replayed = await client.post(
        "/api/v1/contacts", headers=theirs, json={"first_name": "X", "external_id": contact["id"]}
    )
    assert replayed.status_code == 201 and replayed.json()["id"] == first.json()["id"]


async def test_erase_scrubs_the_rows_imports_failed_or_skipped_that_name_the_person(
    client: httpx.AsyncClient,
    tenant: Tenant,
    app: Any,
    settings: Settings,
    tmp_path: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Nothing links a row an import left out to a contact, but the errors CSV serves its cells."""
    monkeypatch.setattr(settings, "data_dir", tmp_path)
    contact = await create(client, "/api/v1/contacts", tenant.headers, **PERSON)
    content = (
        "name,email,phone,note\n"
        "张伟,zhang.wei@example.cn,,again\n"
        "Wei Other,not-an-email,+86 138-0013-8000,\n"
        "李伟,li.wei@example.cn,13900139000,坏\n"
        "李伟,li.wei@example.cn,12,\n"
    ).encode()
    uploaded = await client.post(
        "/api/v1/imports",
        headers=tenant.headers,
        files={"file": ("customers.csv", content)},
        data={"entity": "contacts", "mode": "skip_duplicates"},
    )
    assert uploaded.status_code == 202, uploaded.text
    import_id = uploaded.json()["id"]
    ran = await imports.run_import(app.state.session_factory, uuid.UUID(tenant.organization_id), uuid.UUID(import_id))
    assert ran == "done"

    erased = await client.post(f"/api/v1/contacts/{contact['id']}/erase", headers=tenant.headers)
    assert erased.status_code == 200, erased.text
    errors = (await client.get(f"/api/v1/imports/{import_id}/errors", headers=tenant.headers)).content.decode(
        "utf-8-sig"
    )
    rows = [row[3:] for row in csv.reader(io.StringIO(errors))][1:]
    # The person's rows are scrubbed; another person's row is left whole, though it shares a name part.
    assert rows == [
        ["(erased)", "(erased)", "", "again"],
        ["Wei Other", "not-an-email", "(erased)", ""],
        ["李伟", "li.wei@example.cn", "12", ""],
    ]


async def test_erase_expires_contact_exports_and_scrubs_their_search_terms(
    client: httpx.AsyncClient, tenant: Tenant, app: Any
) -> None:
    person = await create(
        client, "/api/v1/contacts", tenant.headers, first_name="伟", last_name="张", email="zhang.wei@erase.cn"
    )
    requested = await client.post(
        "/api/v1/exports", headers=tenant.headers, json={"entity": "contacts", "q": "zhang.wei@erase.cn"}
    )
    assert requested.status_code == 202, requested.text
    export_id = requested.json()["id"]
    assert await exports.run_export(app.state.session_factory, uuid.UUID(tenant.organization_id), uuid.UUID(export_id))
    download = f"/api/v1/exports/{export_id}/download"
    assert "zhang.wei@erase.cn" in (await client.get(download, headers=tenant.headers)).text

    erased = await client.post(f"/api/v1/contacts/{person['id']}/erase", headers=tenant.headers)
    assert erased.status_code == 200, erased.text
    assert (await client.get(download, headers=tenant.headers)).status_code == 410
    stored = (await client.get(f"/api/v1/exports/{export_id}", headers=tenant.headers)).json()
    assert "zhang.wei" not in str(stored)
    history = (await client.get(f"/api/v1/contacts/{person['id']}/history", headers=tenant.headers)).json()
    erasure = next(entry for entry in history["items"] if entry["action"] == "erase")
    scrubbed = erasure["changes"]["scrubbed_records"]["after"]
    assert (scrubbed["exports"], scrubbed["export_requests"]) == (1, 1)


async def test_erase_drops_webhook_receivers_replies_about_the_person(
    client: httpx.AsyncClient, tenant: Tenant, receiver: Receiver, relay: Any
) -> None:
    async def echo(received: Received) -> web.StreamResponse:
        return web.Response(status=200, body=received.body)

    receiver.responders["/echo"] = echo
    subscribed = await client.post(
        "/api/v1/webhooks", headers=tenant.headers, json={"url": receiver.url("/echo"), "events": ["contact.*"]}
    )
    assert subscribed.status_code == 201, subscribed.text
    person = await create(client, "/api/v1/contacts", tenant.headers, first_name="伟", email="echo.wei@erase.cn")
    bystander = await create(client, "/api/v1/contacts", tenant.headers, first_name="芳", email="fang@erase.cn")
    await relay.run(budget_seconds=10)
    deliveries = f"/api/v1/webhooks/{subscribed.json()['id']}/deliveries"

    def replies() -> dict[str, str | None]:
        return {item["entity_id"]: item["last_response"] for item in listed}

    listed = (await client.get(deliveries, headers=tenant.headers)).json()["items"]
    assert "echo.wei@erase.cn" in (replies()[person["id"]] or "")

    erased = await client.post(f"/api/v1/contacts/{person['id']}/erase", headers=tenant.headers)
    assert erased.status_code == 200, erased.text
    listed = (await client.get(deliveries, headers=tenant.headers)).json()["items"]
    assert replies()[person["id"]] is None
    assert "fang@erase.cn" in (replies()[bystander["id"]] or "")
