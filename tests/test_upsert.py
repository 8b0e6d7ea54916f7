"""PUT /contacts/external/{id} and /companies/external/{id}: upsert by another system's id."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from tests.helpers import PROBLEM, Tenant, add_api_key


@pytest.mark.parametrize(
    ("path", "first", "change"),
    [
        ("contacts", {"first_name": "伟", "last_name": "张", "email": "Zhang.Wei@Example.com"}, {"title": "经理"}),
        ("companies", {"name": "上海天元贸易有限公司", "industry": "贸易"}, {"industry": "金融"}),
    ],
)
async def test_first_put_creates_then_updates(
    client: httpx.AsyncClient, tenant: Tenant, path: str, first: dict[str, Any], change: dict[str, Any]
) -> None:
    url = f"/api/v1/{path}/external/ERP-0001"
    created = await client.put(url, headers=tenant.headers, json=first)
    assert created.status_code == 201, created.text
    record = created.json()
    assert record["external_id"] == "ERP-0001"
    assert created.headers["location"] == f"/api/v1/{path}/{record['id']}"
    assert created.headers["etag"] == 'W/"1"'

    updated = await client.put(url, headers={**tenant.headers, "If-Match": 'W/"1"'}, json=change)
    assert updated.status_code == 200
    assert updated.json()["id"] == record["id"]
    assert updated.json()["version"] == 2
    assert all(updated.json()[k] == v for k, v in change.items())
    for key in first.keys() - change.keys():
        assert updated.json()[key] == record[key]  # a patch: fields not sent are kept

    same = await client.put(url, headers=tenant.headers, json=change)
    assert same.status_code == 200 and same.json()["version"] == 2  # nothing changed, nothing written
    stale = await client.put(url, headers={**tenant.headers, "If-Match": 'W/"1"'}, json={"tags": ["x"]})
    assert stale.status_code == 412
    events = (await client.get("/api/v1/events", headers=tenant.headers)).json()["items"]
    assert [e["type"].split(".")[1] for e in events] == ["created", "updated"]


async def test_a_new_record_needs_what_a_create_needs(client: httpx.AsyncClient, tenant: Tenant) -> None:
    response = await client.put("/api/v1/contacts/external/E-1", headers=tenant.headers, json={"title": "经理"})
    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM
    assert response.json()["errors"][0]["loc"] == ["body"]
    company = await client.put("/api/v1/companies/external/E-1", headers=tenant.headers, json={"industry": "贸易"})
    assert company.status_code == 422
    assert ["body", "name"] in [e["loc"] for e in company.json()["errors"]]
    bad_email = await client.put("/api/v1/contacts/external/E-2", headers=tenant.headers, json={"email": "nope"})
    assert bad_email.status_code == 422
    renaming = await client.put(
        "/api/v1/contacts/external/E-3", headers=tenant.headers, json={"first_name": "伟", "external_id": "E-4"}
    )
    assert renaming.status_code == 422
    assert renaming.json()["errors"][0]["loc"] == ["body", "external_id"]
    same = await client.put(
        "/api/v1/contacts/external/E-3", headers=tenant.headers, json={"first_name": "伟", "external_id": "E-3"}
    )
    assert same.status_code == 201
    slashed = await client.put("/api/v1/contacts/external/2023/0001", headers=tenant.headers, json={"first_name": "伟"})
    assert slashed.status_code == 201 and slashed.json()["external_id"] == "2023/0001"
    too_long = await client.put(f"/api/v1/contacts/external/{'x' * 201}", headers=tenant.headers, json={})
    assert too_long.status_code == 422


async def test_if_match_on_a_missing_record_is_412(client: httpx.AsyncClient, tenant: Tenant) -> None:
    response = await client.put(
        "/api/v1/contacts/external/E-9", headers={**tenant.headers, "If-Match": 'W/"1"'}, json={"first_name": "伟"}
    )
    assert response.status_code == 412


async def test_concurrent_upserts_of_one_id_make_one_record(client: httpx.AsyncClient, tenant: Tenant) -> None:
    key = await add_api_key(client, tenant, ["contacts:write", "contacts:read"])

    async def put(i: int) -> httpx.Response:
        return await client.put(
            "/api/v1/contacts/external/RACE", headers=key, json={"first_name": "伟", "title": str(i)}
        )

    replies = await asyncio.gather(*(put(i) for i in range(12)))
    assert sorted(r.status_code for r in replies).count(201) == 1
    assert {r.status_code for r in replies} == {200, 201}
    assert len({r.json()["id"] for r in replies}) == 1
    listed = await client.get("/api/v1/contacts", headers=key, params={"external_id": "RACE"})
    assert len(listed.json()["items"]) == 1


async def test_an_archived_record_must_be_restored_first(client: httpx.AsyncClient, tenant: Tenant) -> None:
    created = (
        await client.put("/api/v1/contacts/external/A-1", headers=tenant.headers, json={"first_name": "伟"})
    ).json()
    await client.delete(f"/api/v1/contacts/{created['id']}", headers=tenant.headers)
    response = await client.put("/api/v1/contacts/external/A-1", headers=tenant.headers, json={"title": "x"})
    assert response.status_code == 409


async def test_the_same_external_id_in_another_organisation_is_another_record(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    ours = await client.put("/api/v1/companies/external/C-1", headers=tenant.headers, json={"name": "天元"})
    theirs = await client.put("/api/v1/companies/external/C-1", headers=other_tenant.headers, json={"name": "别家"})
    assert ours.status_code == theirs.status_code == 201
    assert ours.json()["id"] != theirs.json()["id"]
    again = await client.put("/api/v1/companies/external/C-1", headers=other_tenant.headers, json={"industry": "x"})
    assert again.json()["id"] == theirs.json()["id"] and again.json()["name"] == "别家"


async def test_scopes_apply(client: httpx.AsyncClient, tenant: Tenant) -> None:
    reader = await add_api_key(client, tenant, ["contacts:read"])
    response = await client.put("/api/v1/contacts/external/S-1", headers=reader, json={"first_name": "伟"})
    assert response.status_code == 403
