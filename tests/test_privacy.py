"""GET /contacts/{id}/personal-data and POST /contacts/{id}/erase."""

from __future__ import annotations

import uuid

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models.idempotency import IdempotencyRecord
from tests.helpers import Tenant, add_api_key, add_user

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
