"""POST /contacts/batch and /companies/batch: one result per record, atomic on request."""

from __future__ import annotations

from typing import Any

import httpx

from tests.helpers import PROBLEM, Tenant, add_user


async def _batch(
    client: httpx.AsyncClient, tenant: Tenant, path: str, mode: str, records: list[dict[str, Any]], **params: Any
) -> httpx.Response:
    return await client.post(
        f"/api/v1/{path}/batch", headers=tenant.headers, params=params, json={"mode": mode, "records": records}
    )


async def test_create_reports_each_record_and_a_bad_one_fails_alone(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    foreign = await client.post("/api/v1/companies", headers=other_tenant.headers, json={"name": "别家"})
    response = await _batch(
        client,
        tenant,
        "contacts",
        "create",
        [
            {"first_name": "伟", "last_name": "张", "email": "Zhang.Wei@Example.cn", "phone": "138 0013 8000"},
            {"first_name": "娜", "email": "not an e-mail"},
            {"last_name": "王", "company_id": foreign.json()["id"]},
            {"title": "no name at all"},
            {"first_name": "芳", "owner_id": other_tenant.user_id},
            {"first_name": "强", "external_id": "E-1"},
        ],
    )
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [r["status"] for r in results] == ["created", "failed", "failed", "failed", "failed", "created"]
    assert [r["index"] for r in results] == list(range(6))
    assert ["body", "records", 1, "email"] in [e["loc"] for e in results[1]["problem"]["errors"]]
    assert results[1]["problem"]["detail"].startswith("body.records.1.email: ")
    assert results[2]["problem"]["errors"][0] == {"loc": ["body", "records", 2, "company_id"], "msg": "no such company"}
    assert results[3]["problem"]["status"] == 422
    assert results[4]["problem"]["errors"][0]["loc"] == ["body", "records", 4, "owner_id"]
    created = (await client.get(f"/api/v1/contacts/{results[0]['id']}", headers=tenant.headers)).json()
    assert created["email"] == "zhang.wei@example.cn" and created["phone"] == "+8613800138000"
    assert created["owner_id"] == tenant.user_id
    found = await client.get("/api/v1/contacts", headers=tenant.headers, params={"q": "0013"})
    assert [c["id"] for c in found.json()["items"]] == [results[0]["id"]]
    events = (await client.get("/api/v1/events", headers=tenant.headers)).json()["items"]
    assert [(e["type"], e["entity_id"]) for e in events] == [
        ("contact.created", results[0]["id"]),
        ("contact.created", results[5]["id"]),
    ]
    audit = await client.get("/api/v1/audit-log", headers=tenant.headers, params={"entity_id": results[5]["id"]})
    assert [a["action"] for a in audit.json()["items"]] == ["create"]

    again = await _batch(client, tenant, "contacts", "create", [{"first_name": "强", "external_id": "E-1"}])
    assert again.json()["results"][0]["status"] == "failed"
    assert again.json()["results"][0]["problem"]["status"] == 409


async def test_atomic_writes_nothing_when_one_record_fails(client: httpx.AsyncClient, tenant: Tenant) -> None:
    response = await _batch(
        client, tenant, "contacts", "create", [{"first_name": "伟"}, {"email": "bad"}], atomic="true"
    )
    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM
    assert ["body", "records", 1, "email"] in [e["loc"] for e in response.json()["errors"]]
    listed = await client.get("/api/v1/contacts", headers=tenant.headers)
    assert listed.json()["items"] == []
    ok = await _batch(client, tenant, "contacts", "create", [{"first_name": "伟", "external_id": "T-1"}], atomic="true")
    assert ok.json()["results"][0]["status"] == "created"
    taken = await _batch(
        client,
        tenant,
        "contacts",
        "create",
        [{"first_name": "新"}, {"first_name": "重", "external_id": "T-1"}],
        atomic="true",
    )
    assert taken.status_code == 422
    (error,) = taken.json()["errors"]
    assert error["loc"] == ["body", "records", 1] and "external_id exists" in error["msg"]
    assert len((await client.get("/api/v1/contacts", headers=tenant.headers)).json()["items"]) == 1


async def test_upsert_matches_external_id_then_email(client: httpx.AsyncClient, tenant: Tenant) -> None:
    first = await _batch(
        client,
        tenant,
        "contacts",
        "upsert",
        [
            {"external_id": "C-1", "first_name": "伟", "email": "wei@example.cn"},
            {"email": "na@example.cn", "first_name": "娜"},
        ],
    )
    assert [r["status"] for r in first.json()["results"]] == ["created", "created"]
    wei, na = (r["id"] for r in first.json()["results"])
    second = await _batch(
        client,
        tenant,
        "contacts",
        "upsert",
        [
            {"external_id": "C-1", "title": "经理"},
            {"email": "NA@example.cn", "first_name": "娜"},
            {"email": "new@example.cn", "first_name": "新"},
            {"title": "no key"},
            {"external_id": "C-1", "title": "twice"},
            {"email": "ghost@example.cn"},
        ],
    )
    results = second.json()["results"]
    assert [r["status"] for r in results] == ["updated", "unchanged", "created", "failed", "failed", "created"]
    assert results[0]["id"] == wei and results[1]["id"] == na
    assert "external_id, email" in results[3]["problem"]["errors"][0]["msg"]
    assert "record 0" in results[4]["problem"]["errors"][0]["msg"]
    updated = (await client.get(f"/api/v1/contacts/{wei}", headers=tenant.headers)).json()
    assert updated["title"] == "经理" and updated["first_name"] == "伟" and updated["version"] == 2
    unchanged = (await client.get(f"/api/v1/contacts/{na}", headers=tenant.headers)).json()
    assert unchanged["version"] == 1


async def test_upsert_refuses_archived_ambiguous_and_invisible_matches(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    archived = (await client.post("/api/v1/contacts", headers=tenant.headers, json={"email": "old@example.cn"})).json()
    await client.delete(f"/api/v1/contacts/{archived['id']}", headers=tenant.headers)
    for _ in range(2):
        await client.post("/api/v1/contacts", headers=tenant.headers, json={"email": "twin@example.cn"})
    await client.patch("/api/v1/organization", headers=tenant.headers, json={"record_visibility": "own"})
    sales = await add_user(client, tenant, "sales")
    owned_by_owner = (
        await client.post("/api/v1/contacts", headers=tenant.headers, json={"email": "boss@example.cn"})
    ).json()
    as_owner = await _batch(
        client, tenant, "contacts", "upsert", [{"email": "old@example.cn"}, {"email": "twin@example.cn"}]
    )
    archived_result, twins = as_owner.json()["results"]
    assert archived_result["status"] == twins["status"] == "failed"
    assert "archived" in archived_result["problem"]["detail"]
    assert "2 contact records" in twins["problem"]["detail"]
    as_sales = await _batch(client, sales, "contacts", "upsert", [{"email": "boss@example.cn", "title": "x"}])
    (invisible,) = as_sales.json()["results"]
    assert invisible["status"] == "failed" and "cannot see" in invisible["problem"]["detail"]
    boss = (await client.get(f"/api/v1/contacts/{owned_by_owner['id']}", headers=tenant.headers)).json()
    assert boss["title"] is None


async def test_companies_upsert_on_domain(client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant) -> None:
    await _batch(client, other_tenant, "companies", "create", [{"name": "别家", "domain": "tianyuan-trade.cn"}])
    first = await _batch(
        client,
        tenant,
        "companies",
        "upsert",
        [{"name": "上海天元贸易有限公司", "domain": "https://www.Tianyuan-Trade.cn"}],
    )
    assert first.json()["results"][0]["status"] == "created"
    second = await _batch(
        client, tenant, "companies", "upsert", [{"domain": "tianyuan-trade.cn", "industry": "贸易"}, {"industry": "x"}]
    )
    results = second.json()["results"]
    assert [r["status"] for r in results] == ["updated", "failed"]
    assert results[0]["id"] == first.json()["results"][0]["id"]


async def test_limits_and_shape(client: httpx.AsyncClient, tenant: Tenant) -> None:
    too_many = await _batch(client, tenant, "contacts", "create", [{"first_name": "x"}] * 1001)
    assert too_many.status_code == 422
    empty = await _batch(client, tenant, "contacts", "create", [])
    assert empty.status_code == 422
    bad_mode = await _batch(client, tenant, "contacts", "merge", [{"first_name": "x"}])
    assert bad_mode.status_code == 422
    full = await _batch(client, tenant, "contacts", "create", [{"first_name": f"人{i}"} for i in range(1000)])
    assert full.status_code == 200
    assert {r["status"] for r in full.json()["results"]} == {"created"}


async def test_a_nul_character_fails_its_own_record_only(client: httpx.AsyncClient, tenant: Tenant) -> None:
    """PostgreSQL's text cannot hold U+0000: such a value is the record's 422, not the batch's 500."""
    response = await _batch(
        client,
        tenant,
        "contacts",
        "create",
        [
            {"first_name": "nul\u0000byte"},
            {"first_name": "伟", "email": "wei@example.cn"},
            {"first_name": "娜", "tags": ["ok", "bad\u0000tag"]},
        ],
    )
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [r["status"] for r in results] == ["failed", "created", "failed"]
    assert results[0]["problem"]["errors"][0]["loc"] == ["body", "records", 0, "first_name"]
    assert "NUL" in results[0]["problem"]["errors"][0]["msg"]
    assert results[2]["problem"]["errors"][0]["loc"] == ["body", "records", 2, "tags"]

    for path, body in (("contacts", {"first_name": "a\u0000"}), ("companies", {"name": "公司\u0000"})):
        single = await client.post(f"/api/v1/{path}", headers=tenant.headers, json=body)
        assert single.status_code == 422, single.text
        assert single.headers["content-type"] == PROBLEM


async def test_a_record_sharing_any_key_with_an_earlier_one_is_the_same_record(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    """One record keyed by external_id and a later one by the same e-mail name the same person."""
    response = await _batch(
        client,
        tenant,
        "contacts",
        "upsert",
        [
            {"external_id": "XK-1", "email": "cross@example.cn", "first_name": "伟"},
            {"email": "cross@example.cn", "title": "经理"},
            {"external_id": "XK-2", "email": "other@example.cn"},
        ],
    )
    results = response.json()["results"]
    assert [r["status"] for r in results] == ["created", "failed", "created"]
    assert results[1]["problem"]["errors"] == [
        {"loc": ["body", "records", 1, "email"], "msg": "record 0 has the same value"}
    ]
    listed = await client.get("/api/v1/contacts", headers=tenant.headers, params={"email": "cross@example.cn"})
    assert len(listed.json()["items"]) == 1
