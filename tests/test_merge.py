"""POST /contacts/{id}/merge and /companies/{id}/merge."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from tests.helpers import Tenant


async def _post(client: httpx.AsyncClient, tenant: Tenant, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = await client.post(f"/api/v1/{path}", headers=tenant.headers, json=body)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


async def test_contacts_merge_into_a_survivor(client: httpx.AsyncClient, tenant: Tenant) -> None:
    company = await _post(client, tenant, "companies", {"name": "天元"})
    survivor = await _post(client, tenant, "contacts", {"first_name": "伟", "last_name": "张", "tags": ["vip"]})
    twin = await _post(
        client,
        tenant,
        "contacts",
        {"first_name": "Wei", "email": "zhang.wei@example.cn", "title": "经理", "tags": ["华东", "vip"],
         "company_id": company["id"], "external_id": "ERP-7"},
    )  # fmt: skip
    reply = await client.post(
        f"/api/v1/contacts/{survivor['id']}/merge",
        headers=tenant.headers,
        json={"merge_ids": [twin["id"]], "field_choices": {"external_id": twin["id"]}},
    )
    assert reply.status_code == 200, reply.text
    merged = reply.json()["survivor"]
    assert merged["first_name"] == "伟"  # the survivor's value stays
    assert merged["email"] == "zhang.wei@example.cn" and merged["title"] == "经理"  # empty fields filled
    assert merged["tags"] == ["vip", "华东"]
    assert merged["company_id"] == company["id"] and merged["external_id"] == "ERP-7"
    found = await client.get("/api/v1/contacts", headers=tenant.headers, params={"q": "天元"})
    assert [c["id"] for c in found.json()["items"]] == [survivor["id"]]

    old = await client.get(f"/api/v1/contacts/{twin['id']}", headers=tenant.headers, follow_redirects=False)
    assert old.status_code == 301
    assert old.headers["location"] == f"/api/v1/contacts/{survivor['id']}"
    assert old.json()["survivor_id"] == survivor["id"]
    events = (await client.get("/api/v1/events", headers=tenant.headers, params={"type": "contact.merged"})).json()
    (event,) = events["items"]
    assert event["entity_id"] == survivor["id"]
    assert event["changes"]["merged_ids"]["after"] == [twin["id"]]
    history = (await client.get(f"/api/v1/contacts/{survivor['id']}/history", headers=tenant.headers)).json()
    assert history["items"][0]["action"] == "merge"


async def test_merging_companies_moves_their_contacts(client: httpx.AsyncClient, tenant: Tenant) -> None:
    keep = await _post(client, tenant, "companies", {"name": "上海天元贸易有限公司"})
    drop = await _post(client, tenant, "companies", {"name": "天元贸易", "domain": "tianyuan-trade.cn"})
    person = await _post(client, tenant, "contacts", {"first_name": "娜", "company_id": drop["id"]})
    reply = await client.post(
        f"/api/v1/companies/{keep['id']}/merge", headers=tenant.headers, json={"merge_ids": [drop["id"]]}
    )
    assert reply.status_code == 200, reply.text
    assert reply.json()["moved"] == {"contacts.company_id": 1}
    assert reply.json()["survivor"]["domain"] == "tianyuan-trade.cn"
    moved = (await client.get(f"/api/v1/contacts/{person['id']}", headers=tenant.headers)).json()
    assert moved["company_id"] == keep["id"]
    found = await client.get("/api/v1/contacts", headers=tenant.headers, params={"q": "上海天元"})
    assert [c["id"] for c in found.json()["items"]] == [person["id"]]


async def test_a_table_added_later_is_moved_without_being_named(
    client: httpx.AsyncClient, tenant: Tenant, db: AsyncSession
) -> None:
    """Any table with a composite foreign key into contacts is repointed by a merge."""
    table = f"later_{uuid.uuid4().hex[:8]}"
    await db.execute(
        text(
            f"CREATE TABLE {table} (organization_id uuid NOT NULL, id uuid PRIMARY KEY, contact_id uuid, "
            f"FOREIGN KEY (organization_id, contact_id) REFERENCES contacts (organization_id, id))"
        )
    )
    await db.commit()
    try:
        survivor = await _post(client, tenant, "contacts", {"first_name": "甲"})
        other = await _post(client, tenant, "contacts", {"first_name": "乙"})
        await db.execute(
            text(f"INSERT INTO {table} VALUES (:org, :id, :contact)"),
            {"org": tenant.organization_id, "id": uuid.uuid4(), "contact": other["id"]},
        )
        await db.commit()
        reply = await client.post(
            f"/api/v1/contacts/{survivor['id']}/merge", headers=tenant.headers, json={"merge_ids": [other["id"]]}
        )
        assert reply.json()["moved"] == {f"{table}.contact_id": 1}
        pointed = await db.scalar(text(f"SELECT contact_id FROM {table}"))
        assert str(pointed) == survivor["id"]
    finally:
        await db.rollback()
        await db.execute(text(f"DROP TABLE {table}"))
        await db.commit()


async def test_bad_merges(client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant) -> None:
    a = await _post(client, tenant, "contacts", {"first_name": "甲"})
    b = await _post(client, tenant, "contacts", {"first_name": "乙"})
    theirs = await _post(client, other_tenant, "contacts", {"first_name": "丙"})
    url = f"/api/v1/contacts/{a['id']}/merge"
    cases = [
        ({"merge_ids": []}, 422),
        ({"merge_ids": [a["id"]]}, 422),
        ({"merge_ids": [theirs["id"]]}, 404),
        ({"merge_ids": [b["id"]], "field_choices": {"version": b["id"]}}, 422),
        ({"merge_ids": [b["id"]], "field_choices": {"email": theirs["id"]}}, 422),
    ]
    for body, status in cases:
        response = await client.post(url, headers=tenant.headers, json=body)
        assert response.status_code == status, (body, response.text)
    stale = await client.post(url, headers={**tenant.headers, "If-Match": 'W/"5"'}, json={"merge_ids": [b["id"]]})
    assert stale.status_code == 412
    assert (await client.post(url, headers=tenant.headers, json={"merge_ids": [b["id"]]})).status_code == 200
    again = await client.post(url, headers=tenant.headers, json={"merge_ids": [b["id"]]})
    assert again.status_code == 409
    foreign = await client.post(
        f"/api/v1/contacts/{theirs['id']}/merge", headers=tenant.headers, json={"merge_ids": [b["id"]]}
    )
    assert foreign.status_code == 404


async def test_the_organisation_can_merge_e_mail_duplicates_on_create(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    first = await _post(client, tenant, "contacts", {"first_name": "伟", "email": "wei@example.cn", "tags": ["vip"]})
    unruled = await client.post("/api/v1/contacts", headers=tenant.headers, json={"email": "wei@example.cn"})
    assert unruled.status_code == 201 and unruled.json()["id"] != first["id"]
    await client.delete(f"/api/v1/contacts/{unruled.json()['id']}", headers=tenant.headers)

    ruled = await client.patch("/api/v1/organization", headers=tenant.headers, json={"merge_email_duplicates": True})
    assert ruled.status_code == 200 and ruled.json()["merge_email_duplicates"] is True
    again = await client.post(
        "/api/v1/contacts",
        headers=tenant.headers,
        json={"first_name": "Wei", "email": "WEI@example.cn", "title": "经理", "tags": ["华东"]},
    )
    assert again.status_code == 200, again.text
    merged = again.json()
    assert merged["id"] == first["id"]
    assert merged["first_name"] == "伟" and merged["title"] == "经理" and merged["tags"] == ["vip", "华东"]
    events = (await client.get("/api/v1/events", headers=tenant.headers, params={"type": "contact.merged"})).json()
    assert [e["entity_id"] for e in events["items"]] == [first["id"]]
    other_email = await client.post("/api/v1/contacts", headers=tenant.headers, json={"email": "na@example.cn"})
    assert other_email.status_code == 201
    listed = await client.get("/api/v1/contacts", headers=tenant.headers, params={"email": "wei@example.cn"})
    assert [c["id"] for c in listed.json()["items"]] == [first["id"]]

    batch = await client.post(
        "/api/v1/contacts/batch",
        headers=tenant.headers,
        json={"mode": "create", "records": [{"email": "Wei@Example.cn", "city": "上海"}, {"email": "new@example.cn"}]},
    )
    assert [(r["status"], r["id"] == first["id"]) for r in batch.json()["results"]] == [
        ("updated", True),
        ("created", False),
    ]
    events = (await client.get("/api/v1/events", headers=tenant.headers, params={"type": "contact.merged"})).json()
    assert [e["entity_id"] for e in events["items"]] == [first["id"], first["id"]]
    listed = await client.get("/api/v1/contacts", headers=tenant.headers, params={"email": "wei@example.cn"})
    assert [(c["id"], c["city"]) for c in listed.json()["items"]] == [(first["id"], "上海")]


async def test_a_merged_record_takes_no_new_links_and_is_not_restored(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    """What is linked to a merged record stays with it, archived, out of the survivor's sight: so
    nothing new may be, and the record cannot come back to life by a restore."""
    company = await _post(client, tenant, "companies", {"name": "天元"})
    gone_company = await _post(client, tenant, "companies", {"name": "天元贸易"})
    person = await _post(client, tenant, "contacts", {"first_name": "伟"})
    twin = await _post(client, tenant, "contacts", {"first_name": "Wei"})
    for path, survivor, merged in (("contacts", person, twin), ("companies", company, gone_company)):
        reply = await client.post(
            f"/api/v1/{path}/{survivor['id']}/merge", headers=tenant.headers, json={"merge_ids": [merged["id"]]}
        )
        assert reply.status_code == 200, reply.text

    refused = [
        ("tasks", {"title": "回访", "contact_id": twin["id"]}, ["body", "contact_id"]),
        ("tasks", {"title": "回访", "company_id": gone_company["id"]}, ["body", "company_id"]),
        ("deals", {"name": "大单", "company_id": gone_company["id"]}, ["body", "company_id"]),
        ("deals", {"name": "大单", "contacts": [{"contact_id": twin["id"]}]}, ["body", "contacts", 0, "contact_id"]),
    ]
    for path, body, loc in refused:
        reply = await client.post(f"/api/v1/{path}", headers=tenant.headers, json=body)
        assert reply.status_code == 422, (path, body, reply.text)
        (error,) = reply.json()["errors"]
        assert error["loc"] == loc and "was merged into" in error["msg"], error
    activity = await client.post(
        f"/api/v1/contacts/{twin['id']}/activities", headers=tenant.headers, json={"signal": "email_opened"}
    )
    assert activity.status_code == 409 and person["id"] in activity.json()["detail"]
    for path, merged in (("contacts", twin), ("companies", gone_company)):
        restore = await client.post(f"/api/v1/{path}/{merged['id']}/restore", headers=tenant.headers)
        assert restore.status_code == 409, restore.text
        assert "merged into" in restore.json()["detail"]
    tasks = await client.post(
        "/api/v1/tasks", headers=tenant.headers, json={"title": "回访", "contact_id": person["id"]}
    )
    assert tasks.status_code == 201


async def test_an_upsert_keyed_on_a_merged_records_value_updates_its_survivor(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    survivor = await _post(client, tenant, "contacts", {"first_name": "伟", "email": "wei@example.cn"})
    same_email = await _post(client, tenant, "contacts", {"first_name": "Wei", "email": "wei@example.cn"})
    own_email = await _post(client, tenant, "contacts", {"first_name": "W.", "email": "w.zhang@example.cn"})
    company = await _post(client, tenant, "companies", {"name": "天元", "domain": "tianyuan.cn"})
    twin_company = await _post(client, tenant, "companies", {"name": "天元贸易", "domain": "tianyuan.cn"})
    for path, kept, merged in (
        ("contacts", survivor, [same_email["id"], own_email["id"]]),
        ("companies", company, [twin_company["id"]]),
    ):
        reply = await client.post(
            f"/api/v1/{path}/{kept['id']}/merge", headers=tenant.headers, json={"merge_ids": merged}
        )
        assert reply.status_code == 200, reply.text

    contacts = await client.post(
        "/api/v1/contacts/batch",
        headers=tenant.headers,
        json={"mode": "upsert", "records": [
            {"email": "wei@example.cn", "title": "经理"},
            {"email": "w.zhang@example.cn", "city": "上海"},
        ]},
    )  # fmt: skip
    assert contacts.status_code == 200, contacts.text
    assert [(r["status"], r["id"]) for r in contacts.json()["results"]] == [
        ("updated", survivor["id"]),
        ("updated", survivor["id"]),
    ]
    companies = await client.post(
        "/api/v1/companies/batch",
        headers=tenant.headers,
        json={"mode": "upsert", "records": [{"domain": "tianyuan.cn", "industry": "零售"}]},
    )
    assert [(r["status"], r["id"]) for r in companies.json()["results"]] == [("updated", company["id"])]
