"""The audit log: who may read it, its filters, order and paging, and tenant isolation."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models.audit import AuditEntry
from tests.helpers import Tenant, add_api_key, add_user, assert_problem, create, error_locs

AUDIT = "/api/v1/audit-log"


def _time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


async def _entries(client: httpx.AsyncClient, headers: dict[str, str], **params: Any) -> list[dict[str, Any]]:
    """Every entry the filters select, following the cursor to the end."""
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        query = {"limit": 500, **params}
        if cursor:
            query["cursor"] = cursor
        response = await client.get(AUDIT, params=query, headers=headers)
        assert response.status_code == 200, response.text
        page = response.json()
        items += page["items"]
        cursor = page["next_cursor"]
        if not cursor:
            return items


async def _some_history(client: httpx.AsyncClient, tenant: Tenant) -> dict[str, Any]:
    """A contact created, changed and archived, and a company: five entries after sign-up's three."""
    contact = await create(client, "/api/v1/contacts", tenant.headers, first_name="伟")
    url = f"/api/v1/contacts/{contact['id']}"
    await client.patch(url, headers=tenant.headers, json={"title": "采购经理"})
    await client.delete(url, headers=tenant.headers)
    company = await create(client, "/api/v1/companies", tenant.headers, name="天元")
    await client.patch(f"/api/v1/companies/{company['id']}", headers=tenant.headers, json={"industry": "贸易"})
    return {"contact": contact, "company": company}


async def test_owner_lists_the_organisations_audit_trail(
    client: httpx.AsyncClient, tenant: Tenant, db: AsyncSession
) -> None:
    made = await _some_history(client, tenant)
    response = await client.get(AUDIT, headers=tenant.headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["next_cursor"] is None
    items = body["items"]
    summary = [(e["entity_type"], e["action"]) for e in items]
    assert summary[:5] == [
        ("company", "update"),
        ("company", "create"),
        ("contact", "delete"),
        ("contact", "update"),
        ("contact", "create"),
    ]
    # Sign-up writes the organisation, its owner and its sales pipeline in one transaction.
    assert sorted(summary[5:]) == [("organization", "create"), ("pipeline", "create"), ("user", "create")]
    pipeline = (await client.get("/api/v1/pipelines", headers=tenant.headers)).json()["items"][0]
    assert {e["entity_id"] for e in items[5:]} == {tenant.organization_id, tenant.user_id, pipeline["id"]}
    update = items[3]
    assert update["entity_id"] == made["contact"]["id"]
    assert update["changes"] == {"title": {"before": None, "after": "采购经理"}}
    assert (update["actor_type"], update["actor_id"]) == ("user", tenant.user_id)
    assert set(update) == {
        "id",
        "occurred_at",
        "actor_type",
        "actor_id",
        "action",
        "entity_type",
        "entity_id",
        "changes",
        "request_id",
    }
    in_db = await db.scalar(select(func.count()).where(AuditEntry.organization_id == uuid.UUID(tenant.organization_id)))
    assert in_db == len(items) == 8


async def test_newest_first(client: httpx.AsyncClient, tenant: Tenant) -> None:
    await _some_history(client, tenant)
    items = await _entries(client, tenant.headers)
    times = [_time(e["occurred_at"]) for e in items]
    assert times == sorted(times, reverse=True)
    assert [e["id"] for e in items] == sorted((e["id"] for e in items), reverse=True)


async def test_admin_and_audit_read_keys_can_list(client: httpx.AsyncClient, tenant: Tenant) -> None:
    await _some_history(client, tenant)
    expected = [e["id"] for e in await _entries(client, tenant.headers)]
    admin = await add_user(client, tenant, "admin")
    # The admin's own creation is now the newest entry.
    assert [e["id"] for e in await _entries(client, admin.headers)][1:] == expected
    key = await add_api_key(client, tenant, ["audit:read"])
    by_key = await _entries(client, key)
    # ... and the key's creation is newer still.
    assert by_key[0]["entity_type"] == "api_key" and [e["id"] for e in by_key][2:] == expected


@pytest.mark.parametrize("role", ["manager", "sales", "support", "marketing", "viewer"])
async def test_other_roles_cannot_read_the_audit_log(client: httpx.AsyncClient, tenant: Tenant, role: str) -> None:
    person = await add_user(client, tenant, role)
    assert_problem(await client.get(AUDIT, headers=person.headers), 403)
    assert_problem(await client.get(AUDIT, params={"entity_id": person.user_id}, headers=person.headers), 403)


async def test_keys_without_audit_read_and_anonymous_callers_are_refused(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    key = await add_api_key(client, tenant, ["contacts:read", "companies:read", "users:read"])
    assert_problem(await client.get(AUDIT, headers=key), 403)
    assert_problem(await client.get(AUDIT), 401)


async def test_filter_by_entity_type_and_entity_id(client: httpx.AsyncClient, tenant: Tenant) -> None:
    made = await _some_history(client, tenant)
    contact_id, company_id = made["contact"]["id"], made["company"]["id"]

    contacts = await _entries(client, tenant.headers, entity_type="contact")
    assert [e["action"] for e in contacts] == ["delete", "update", "create"]
    assert {e["entity_id"] for e in contacts} == {contact_id}
    companies = await _entries(client, tenant.headers, entity_type="company")
    assert [e["action"] for e in companies] == ["update", "create"]
    users = await _entries(client, tenant.headers, entity_type="user")
    assert [(e["entity_id"], e["action"]) for e in users] == [(tenant.user_id, "create")]
    assert await _entries(client, tenant.headers, entity_type="deal") == []

    by_id = await _entries(client, tenant.headers, entity_id=company_id)
    assert [(e["entity_type"], e["action"]) for e in by_id] == [("company", "update"), ("company", "create")]
    assert await _entries(client, tenant.headers, entity_id=company_id, entity_type="contact") == []
    assert await _entries(client, tenant.headers, entity_id=str(uuid.uuid4())) == []
    assert error_locs(await client.get(AUDIT, params={"entity_id": "nope"}, headers=tenant.headers)) == [
        ["query", "entity_id"]
    ]


async def test_filter_by_actor(client: httpx.AsyncClient, tenant: Tenant) -> None:
    sales = await add_user(client, tenant, "sales")
    key_headers = await add_api_key(client, tenant, ["contacts:write"])
    key_id = (await client.get("/api/v1/auth/me", headers=key_headers)).json()["api_key"]["id"]
    mine = await create(client, "/api/v1/contacts", sales.headers, first_name="sales made")
    await client.patch(f"/api/v1/contacts/{mine['id']}", headers=sales.headers, json={"title": "x"})
    by_key = await create(client, "/api/v1/contacts", key_headers, first_name="key made")

    by_sales = await _entries(client, tenant.headers, actor_id=sales.user_id)
    assert [(e["entity_id"], e["action"]) for e in by_sales] == [(mine["id"], "update"), (mine["id"], "create")]
    assert all(e["actor_type"] == "user" for e in by_sales)
    keyed = await _entries(client, tenant.headers, actor_id=key_id)
    assert [(e["entity_id"], e["actor_type"]) for e in keyed] == [(by_key["id"], "api_key")]
    by_owner = await _entries(client, tenant.headers, actor_id=tenant.user_id)
    assert {e["entity_type"] for e in by_owner} == {"organization", "user", "pipeline", "api_key"}
    assert all(e["actor_id"] == tenant.user_id for e in by_owner)
    contacts_by_sales = await _entries(client, tenant.headers, actor_id=sales.user_id, entity_type="contact")
    assert len(contacts_by_sales) == 2
    assert await _entries(client, tenant.headers, actor_id=str(uuid.uuid4())) == []


async def test_filter_by_time(client: httpx.AsyncClient, tenant: Tenant) -> None:
    await _some_history(client, tenant)
    items = await _entries(client, tenant.headers)
    assert len(items) == 8
    pivot = items[3]  # the middle entry, newest first
    pivot_time = _time(pivot["occurred_at"])
    newer_ids = [e["id"] for e in items if _time(e["occurred_at"]) >= pivot_time]
    older_ids = [e["id"] for e in items if _time(e["occurred_at"]) < pivot_time]
    assert pivot["id"] in newer_ids and older_ids

    since = await _entries(client, tenant.headers, since=pivot_time.isoformat())
    assert [e["id"] for e in since] == newer_ids
    until = await _entries(client, tenant.headers, until=pivot_time.isoformat())
    assert [e["id"] for e in until] == older_ids
    both = await _entries(
        client,
        tenant.headers,
        since=pivot_time.isoformat(),
        until=(pivot_time + timedelta(microseconds=1)).isoformat(),
    )
    assert pivot["id"] in [e["id"] for e in both]
    assert all(_time(e["occurred_at"]) == pivot_time for e in both)
    # "Z" and other offsets name the same instant.
    shifted = pivot_time.astimezone(datetime.fromisoformat("2000-01-01T00:00:00+08:00").tzinfo)
    assert [e["id"] for e in await _entries(client, tenant.headers, since=shifted.isoformat())] == newer_ids
    as_z = pivot_time.isoformat().replace("+00:00", "Z")
    assert [e["id"] for e in await _entries(client, tenant.headers, until=as_z)] == older_ids
    assert await _entries(client, tenant.headers, since="2999-01-01T00:00:00Z") == []
    assert await _entries(client, tenant.headers, until="2000-01-01T00:00:00Z") == []
    assert error_locs(await client.get(AUDIT, params={"since": "yesterday"}, headers=tenant.headers)) == [
        ["query", "since"]
    ]


async def test_paging_returns_each_entry_once(client: httpx.AsyncClient, tenant: Tenant) -> None:
    for index in range(6):
        await create(client, "/api/v1/contacts", tenant.headers, first_name=f"p{index}")
    full = await _entries(client, tenant.headers)
    assert len(full) == 9
    for limit in (1, 3, 5):
        seen: list[str] = []
        cursor = None
        while True:
            params: dict[str, Any] = {"limit": limit}
            if cursor:
                params["cursor"] = cursor
            page = (await client.get(AUDIT, params=params, headers=tenant.headers)).json()
            assert len(page["items"]) <= limit
            seen += [e["id"] for e in page["items"]]
            cursor = page["next_cursor"]
            if not cursor:
                break
        assert seen == [e["id"] for e in full], limit
    filtered = await _entries(client, tenant.headers, entity_type="contact", limit=4)
    assert len(filtered) == 6


async def test_paging_while_entries_are_written(client: httpx.AsyncClient, tenant: Tenant) -> None:
    for index in range(5):
        await create(client, "/api/v1/contacts", tenant.headers, first_name=f"p{index}")
    before = {e["id"] for e in await _entries(client, tenant.headers)}
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = (await client.get(AUDIT, params=params, headers=tenant.headers)).json()
        seen += [e["id"] for e in page["items"]]
        await create(client, "/api/v1/contacts", tenant.headers, first_name="new")
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert len(seen) == len(set(seen))
    assert set(seen) == before


async def test_other_organisations_entries_never_appear(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    theirs = await _some_history(client, other_tenant)
    await _some_history(client, tenant)
    mine = await _entries(client, tenant.headers)
    theirs_listed = await _entries(client, other_tenant.headers)
    assert not {e["id"] for e in mine} & {e["id"] for e in theirs_listed}
    assert other_tenant.user_id not in {e["actor_id"] for e in mine}
    assert await _entries(client, tenant.headers, entity_id=theirs["contact"]["id"]) == []
    assert await _entries(client, tenant.headers, actor_id=other_tenant.user_id) == []
    assert await _entries(client, tenant.headers, entity_id=other_tenant.organization_id) == []
    their_key = await add_api_key(client, other_tenant, ["audit:read"])
    assert tenant.user_id not in {e["actor_id"] for e in await _entries(client, their_key)}


async def test_times_without_an_offset_are_refused(client: httpx.AsyncClient, tenant: Tenant) -> None:
    response = await client.get(AUDIT, params={"since": "2026-01-01T00:00:00"}, headers=tenant.headers)
    assert error_locs(response) == [["query", "since"]]
