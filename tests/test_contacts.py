"""Contacts: CRUD, cleaning, concurrency control, search, visibility, audit."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models.audit import AuditEntry
from app.models.contact import Contact
from tests.helpers import Tenant, add_api_key, add_user, assert_problem, create, error_locs

CONTACTS = "/api/v1/contacts"


async def test_create_cleans_and_returns_the_contact(client: httpx.AsyncClient, tenant: Tenant) -> None:
    response = await client.post(
        CONTACTS,
        headers=tenant.headers,
        json={
            "first_name": " 伟 ",
            "last_name": "张",
            "title": "采购经理",
            "email": "Zhang.Wei@Example.COM",
            "phone": "138 0013 8000",
            "additional_emails": [{"email": "WEI@home.cn", "label": "home"}],
            "additional_phones": [{"phone": "021-6234 5678", "label": "office"}],
            "city": "上海",
            "country": "cn",
            "tags": ["vip", " vip ", "华东"],
            "external_id": "C001",
            "email_opt_in": True,
            "email_opt_in_source": "web_form",
        },
    )
    assert response.status_code == 201, response.text
    contact = response.json()
    assert response.headers["location"] == f"{CONTACTS}/{contact['id']}"
    assert response.headers["etag"] == 'W/"1"'
    assert contact["first_name"] == "伟" and contact["full_name"] == "张伟"
    assert contact["email"] == "zhang.wei@example.com"
    assert contact["phone"] == "+8613800138000"
    assert contact["additional_emails"] == [{"email": "wei@home.cn", "label": "home"}]
    assert contact["additional_phones"] == [{"phone": "+862162345678", "label": "office"}]
    assert contact["country"] == "CN"
    assert contact["tags"] == ["vip", "华东"]
    assert contact["owner_id"] == tenant.user_id
    assert contact["source"] == "manual" and contact["lifecycle_stage"] == "lead"
    assert contact["email_opt_in"] is True and contact["email_opt_in_source"] == "web_form"
    assert contact["email_opt_in_at"] is not None
    assert contact["archived_at"] is None and contact["version"] == 1
    assert "search_text" not in contact and "organization_id" not in contact


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"email": "not-an-email"}, ["body", "email"]),
        ({"phone": "12"}, ["body", "phone"]),
        ({"first_name": "a", "country": "XX"}, ["body", "country"]),
        ({"first_name": "a", "lifecycle_stage": "prospect"}, ["body", "lifecycle_stage"]),
        ({"first_name": "a", "password": "mass assignment"}, ["body", "password"]),
        ({"first_name": "a", "id": str(uuid.uuid4())}, ["body", "id"]),
        ({"first_name": "a" * 101}, ["body", "first_name"]),
        ({"first_name": "a", "tags": ["x" * 51]}, ["body", "tags"]),
        ({"title": "only a title"}, ["body"]),
        ({"first_name": "a", "company_id": "not-a-uuid"}, ["body", "company_id"]),
    ],
)
async def test_validation_errors(
    client: httpx.AsyncClient, tenant: Tenant, body: dict[str, Any], loc: list[Any]
) -> None:
    response = await client.post(CONTACTS, headers=tenant.headers, json=body)
    assert_problem(response, 422)
    assert loc in error_locs(response)


async def test_references_must_be_in_the_organisation(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    foreign_company = await create(client, "/api/v1/companies", other_tenant.headers, name="别家公司")
    response = await client.post(
        CONTACTS, headers=tenant.headers, json={"first_name": "a", "company_id": foreign_company["id"]}
    )
    assert error_locs(response) == [["body", "company_id"]]
    response = await client.post(
        CONTACTS, headers=tenant.headers, json={"first_name": "a", "owner_id": other_tenant.user_id}
    )
    assert error_locs(response) == [["body", "owner_id"]]


async def test_external_id_is_unique_per_organisation(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    await create(client, CONTACTS, tenant.headers, first_name="a", external_id="C001")
    assert_problem(
        await client.post(CONTACTS, headers=tenant.headers, json={"first_name": "b", "external_id": "C001"}), 409
    )
    await create(client, CONTACTS, other_tenant.headers, first_name="a", external_id="C001")


async def test_update_changes_only_what_was_sent(client: httpx.AsyncClient, tenant: Tenant, db: AsyncSession) -> None:
    contact = await create(client, CONTACTS, tenant.headers, first_name="伟", last_name="张", title="采购", city="上海")
    url = f"{CONTACTS}/{contact['id']}"
    response = await client.patch(url, headers=tenant.headers, json={"title": "总监", "city": None, "tags": ["vip"]})
    assert response.status_code == 200
    body = response.json()
    assert (body["title"], body["city"], body["tags"], body["first_name"]) == ("总监", None, ["vip"], "伟")
    assert body["version"] == 2 and response.headers["etag"] == 'W/"2"'
    assert error_locs(await client.patch(url, headers=tenant.headers, json={"tags": None})) == [["body", "tags"]]
    emptied = await client.patch(url, headers=tenant.headers, json={"first_name": None, "last_name": None})
    assert_problem(emptied, 422)
    history = (await client.get(f"{url}/history", headers=tenant.headers)).json()["items"]
    assert [entry["action"] for entry in history] == ["update", "create"]
    assert history[0]["changes"]["title"] == {"before": "采购", "after": "总监"}
    assert history[0]["changes"]["city"] == {"before": "上海", "after": None}
    assert history[0]["actor_id"] == tenant.user_id and history[0]["actor_type"] == "user"


async def test_stale_if_match_is_412_and_writes_nothing(
    client: httpx.AsyncClient, tenant: Tenant, db: AsyncSession
) -> None:
    contact = await create(client, CONTACTS, tenant.headers, first_name="a")
    url = f"{CONTACTS}/{contact['id']}"
    assert (
        await client.patch(url, headers={**tenant.headers, "If-Match": 'W/"1"'}, json={"title": "x"})
    ).status_code == 200
    stale = {**tenant.headers, "If-Match": 'W/"1"'}
    assert_problem(await client.patch(url, headers=stale, json={"title": "lost update"}), 412)
    assert_problem(await client.delete(url, headers=stale), 412)
    assert_problem(await client.post(f"{url}/restore", headers=stale), 412)
    row = (await db.execute(select(Contact).where(Contact.id == uuid.UUID(contact["id"])))).scalar_one()
    assert (row.title, row.version, row.archived_at) == ("x", 2, None)
    audit_rows = await db.scalar(select(func.count()).where(AuditEntry.entity_id == uuid.UUID(contact["id"])))
    assert audit_rows == 2


async def test_archive_and_restore(client: httpx.AsyncClient, tenant: Tenant) -> None:
    contact = await create(client, CONTACTS, tenant.headers, first_name="a")
    url = f"{CONTACTS}/{contact['id']}"
    archived = await client.delete(url, headers=tenant.headers)
    assert archived.status_code == 200 and archived.json()["archived_at"] is not None
    assert (await client.get(url, headers=tenant.headers)).json()["archived_at"] is not None
    listed = (await client.get(CONTACTS, headers=tenant.headers)).json()["items"]
    assert contact["id"] not in [c["id"] for c in listed]
    in_archive = (await client.get(CONTACTS, params={"archived": "true"}, headers=tenant.headers)).json()["items"]
    assert [c["id"] for c in in_archive] == [contact["id"]]
    assert_problem(await client.patch(url, headers=tenant.headers, json={"title": "x"}), 409)
    assert_problem(await client.delete(url, headers=tenant.headers), 409)
    restored = await client.post(f"{url}/restore", headers=tenant.headers)
    assert restored.status_code == 200 and restored.json()["archived_at"] is None
    assert_problem(await client.post(f"{url}/restore", headers=tenant.headers), 409)
    actions = [e["action"] for e in (await client.get(f"{url}/history", headers=tenant.headers)).json()["items"]]
    assert actions == ["restore", "delete", "create"]


async def test_another_organisations_ids_are_404_everywhere(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    theirs = await create(client, CONTACTS, other_tenant.headers, first_name="秘密")
    url = f"{CONTACTS}/{theirs['id']}"
    for method, path, body in [
        ("GET", url, None),
        ("PATCH", url, {"title": "x"}),
        ("DELETE", url, None),
        ("POST", f"{url}/restore", None),
        ("GET", f"{url}/history", None),
    ]:
        response = await client.request(method, path, headers=tenant.headers, json=body)
        assert_problem(response, 404)
    unknown = await client.get(f"{CONTACTS}/{uuid.uuid4()}", headers=tenant.headers)
    assert_problem(unknown, 404)
    search = await client.post(f"{CONTACTS}/search", headers=tenant.headers, json={"q": "秘密"})
    assert search.json()["items"] == []


async def test_roles_and_scopes(client: httpx.AsyncClient, tenant: Tenant) -> None:
    contact = await create(client, CONTACTS, tenant.headers, first_name="a")
    url = f"{CONTACTS}/{contact['id']}"
    viewer = await add_user(client, tenant, "viewer")
    assert (await client.get(url, headers=viewer.headers)).status_code == 200
    assert_problem(await client.post(CONTACTS, headers=viewer.headers, json={"first_name": "b"}), 403)
    assert_problem(await client.patch(url, headers=viewer.headers, json={"title": "x"}), 403)
    assert_problem(await client.delete(url, headers=viewer.headers), 403)
    assert_problem(await client.post(f"{url}/restore", headers=viewer.headers), 403)

    reader = await add_api_key(client, tenant, ["contacts:read"])
    assert (await client.get(url, headers=reader)).status_code == 200
    assert_problem(await client.post(CONTACTS, headers=reader, json={"first_name": "b"}), 403)
    assert_problem(await client.patch(url, headers=reader, json={"title": "x"}), 403)
    companies_only = await add_api_key(client, tenant, ["companies:read"])
    assert_problem(await client.get(url, headers=companies_only), 403)
    assert_problem(await client.get(CONTACTS, headers=companies_only), 403)

    writer = await add_api_key(client, tenant, ["contacts:write"])
    created = await client.post(CONTACTS, headers=writer, json={"first_name": "from ERP"})
    assert created.status_code == 201
    assert created.json()["source"] == "api" and created.json()["owner_id"] is None
    history = (await client.get(f"{CONTACTS}/{created.json()['id']}/history", headers=tenant.headers)).json()
    assert history["items"][0]["actor_type"] == "api_key"


async def test_list_filters_and_sorts(client: httpx.AsyncClient, tenant: Tenant) -> None:
    rows = [
        {"first_name": "A", "city": "上海", "lifecycle_stage": "customer", "tags": ["vip"], "email": "a@x.cn"},
        {"first_name": "B", "city": "北京", "lifecycle_stage": "lead", "phone": "13800138000"},
        {"first_name": "C", "city": "上海", "lifecycle_stage": "lead", "external_id": "C003"},
        {"first_name": "D"},
    ]
    ids = [(await create(client, CONTACTS, tenant.headers, **row))["id"] for row in rows]

    async def listed(**params: Any) -> list[str]:
        response = await client.get(CONTACTS, params=params, headers=tenant.headers)
        assert response.status_code == 200, response.text
        return [c["first_name"] for c in response.json()["items"]]

    assert await listed() == ["A", "B", "C", "D"]
    assert await listed(city="上海") == ["A", "C"]
    assert await listed(city="上海", lifecycle_stage="lead") == ["C"]
    assert await listed(tag="vip") == ["A"]
    assert await listed(email="A@X.CN") == ["A"]
    assert await listed(phone="+86 138-0013-8000") == ["B"]
    assert await listed(external_id="C003") == ["C"]
    assert await listed(owner_id=tenant.user_id) == ["A", "B", "C", "D"]
    assert await listed(sort="-first_name") == ["D", "C", "B", "A"]
    # Text sorts by code point (上 U+4E0A before 北 U+5317); NULLs last ascending, first descending.
    assert await listed(sort="city,first_name") == ["A", "C", "B", "D"]
    assert await listed(sort="-city,first_name") == ["D", "B", "A", "C"]
    assert await listed(sort="-id") == ["D", "C", "B", "A"]
    assert ids


@pytest.mark.parametrize("sort", ["city,first_name", "-city,first_name", "-city,-id", "email", "-created_at"])
async def test_paging_with_nullable_sort_keys_returns_each_row_once(
    client: httpx.AsyncClient, tenant: Tenant, sort: str
) -> None:
    cities = ["上海", None, "北京", None, "上海", "广州", None]
    for index, city in enumerate(cities):
        body: dict[str, Any] = {"first_name": f"p{index}", "city": city}
        if index % 2:
            body["email"] = f"p{index}@x.cn"
        await create(client, CONTACTS, tenant.headers, **body)
    full = (await client.get(CONTACTS, params={"sort": sort, "limit": 500}, headers=tenant.headers)).json()["items"]
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"sort": sort, "limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = (await client.get(CONTACTS, params=params, headers=tenant.headers)).json()
        seen += [c["id"] for c in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == [c["id"] for c in full]
    assert len(seen) == len(cities)


async def test_paging_to_the_end_while_rows_are_inserted(client: httpx.AsyncClient, tenant: Tenant) -> None:
    existing = {(await create(client, CONTACTS, tenant.headers, first_name=f"e{i}"))["id"] for i in range(25)}
    seen: list[str] = []
    cursor = None
    inserted = 0
    while True:
        params: dict[str, Any] = {"limit": 4}
        if cursor:
            params["cursor"] = cursor
        page = (await client.get(CONTACTS, params=params, headers=tenant.headers)).json()
        seen += [c["id"] for c in page["items"]]
        # Concurrent writers add rows between pages, before and after the reader's position.
        for _ in range(2):
            await create(client, CONTACTS, tenant.headers, first_name=f"n{inserted}")
            inserted += 1
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert len(seen) == len(set(seen)), "a row was returned twice"
    assert existing <= set(seen), "a row that existed before paging began was skipped"


async def test_search_dsl(client: httpx.AsyncClient, tenant: Tenant) -> None:
    for row in [
        {"first_name": "A", "city": "上海", "lifecycle_stage": "customer", "tags": ["vip"], "title": "采购经理"},
        {"first_name": "B", "city": "北京", "lifecycle_stage": "lead", "tags": ["vip", "new"]},
        {"first_name": "C", "city": "上海", "lifecycle_stage": "lead", "email_opt_in": True},
        {"first_name": "D", "title": "Purchasing Manager"},
    ]:
        await create(client, CONTACTS, tenant.headers, **row)

    async def found(filter_: dict[str, Any], **extra: Any) -> list[str]:
        response = await client.post(
            f"{CONTACTS}/search", headers=tenant.headers, json={"filter": filter_, "sort": ["first_name"], **extra}
        )
        assert response.status_code == 200, response.text
        return [c["first_name"] for c in response.json()["items"]]

    assert await found({"field": "city", "op": "eq", "value": "上海"}) == ["A", "C"]
    assert await found(
        {
            "and": [
                {"field": "city", "op": "eq", "value": "上海"},
                {"field": "lifecycle_stage", "op": "eq", "value": "lead"},
            ]
        }
    ) == ["C"]
    assert await found(
        {"or": [{"field": "city", "op": "eq", "value": "北京"}, {"field": "email_opt_in", "op": "eq", "value": True}]}
    ) == ["B", "C"]
    assert await found({"not": {"field": "city", "op": "eq", "value": "上海"}}) == ["B", "D"]
    assert await found({"field": "city", "op": "ne", "value": "上海"}) == ["B", "D"]
    assert await found({"field": "city", "op": "is_null", "value": True}) == ["D"]
    assert await found({"field": "lifecycle_stage", "op": "in", "value": ["customer", "lead"]}) == ["A", "B", "C", "D"]
    assert await found({"field": "tags", "op": "contains", "value": "vip"}) == ["A", "B"]
    assert await found({"field": "tags", "op": "in", "value": ["new", "nothing"]}) == ["B"]
    assert await found({"field": "title", "op": "contains", "value": "manager"}) == ["D"]
    assert await found({"field": "title", "op": "starts_with", "value": "采购"}) == ["A"]
    assert await found({"field": "first_name", "op": "gte", "value": "C"}) == ["C", "D"]
    assert await found({"field": "created_at", "op": "gt", "value": "2000-01-01T00:00:00Z"}) == ["A", "B", "C", "D"]
    assert await found({"field": "city", "op": "eq", "value": "上海"}, q="a") == ["A"]


@pytest.mark.parametrize(
    ("filter_", "loc"),
    [
        ({"field": "password_hash", "op": "eq", "value": "x"}, ["body", "filter", "field"]),
        ({"field": "city", "op": "regex", "value": "x"}, ["body", "filter", "op"]),
        ({"field": "tags", "op": "lt", "value": "x"}, ["body", "filter", "op"]),
        ({"field": "city", "op": "eq"}, ["body", "filter", "value"]),
        ({"field": "created_at", "op": "gt", "value": "yesterday"}, ["body", "filter", "value"]),
        ({"field": "lifecycle_stage", "op": "eq", "value": "prospect"}, ["body", "filter", "value"]),
        ({"field": "city", "op": "in", "value": []}, ["body", "filter", "value"]),
        (
            {"and": [{"field": "city", "op": "eq", "value": "x"}, {"field": "nope", "op": "eq", "value": 1}]},
            ["body", "filter", "and", 1, "field"],
        ),
        ({"and": []}, ["body", "filter", "and"]),
        ({"or": [{"not": {"field": "x"}}]}, ["body", "filter", "or", 0, "not", "field"]),
        ({"xor": []}, ["body", "filter"]),
    ],
)
async def test_search_dsl_rejects_bad_trees(
    client: httpx.AsyncClient, tenant: Tenant, filter_: dict[str, Any], loc: list[Any]
) -> None:
    response = await client.post(f"{CONTACTS}/search", headers=tenant.headers, json={"filter": filter_})
    assert_problem(response, 422)
    assert loc in error_locs(response), error_locs(response)


async def test_q_finds_chinese_names_companies_emails_and_phones(client: httpx.AsyncClient, tenant: Tenant) -> None:
    company = await create(client, "/api/v1/companies", tenant.headers, name="上海天元贸易有限公司")
    await create(
        client,
        CONTACTS,
        tenant.headers,
        first_name="伟",
        last_name="张",
        email="zhang.wei@tianyuan.cn",
        phone="13800138000",
        company_id=company["id"],
    )
    await create(
        client, CONTACTS, tenant.headers, first_name="Wei", last_name="Li", email="li@other.com", phone="+14155550100"
    )
    await create(client, CONTACTS, tenant.headers, first_name="娜", last_name="王", email="wang@example.cn")

    async def q(text: str) -> list[str]:
        response = await client.get(CONTACTS, params={"q": text}, headers=tenant.headers)
        assert response.status_code == 200
        return sorted(c["email"] for c in response.json()["items"])

    assert await q("上海") == ["zhang.wei@tianyuan.cn"]
    assert await q("天元") == ["zhang.wei@tianyuan.cn"]
    assert await q("张伟") == ["zhang.wei@tianyuan.cn"]
    assert await q("张") == ["zhang.wei@tianyuan.cn"]
    assert await q("王娜") == ["wang@example.cn"]
    assert await q("ZHANG.W") == ["zhang.wei@tianyuan.cn"]
    assert await q("@example.cn") == ["wang@example.cn"]
    assert await q("wei") == ["li@other.com", "zhang.wei@tianyuan.cn"]
    assert await q("wei li") == ["li@other.com"]
    assert await q("0013") == ["zhang.wei@tianyuan.cn"]
    assert await q("138-0013-8000") == ["zhang.wei@tianyuan.cn"]
    assert await q("+1 415") == ["li@other.com"]
    assert await q("ｗｅｉ") == ["li@other.com", "zhang.wei@tianyuan.cn"]  # full-width input
    assert await q("50%") == []
    assert await q("nobody") == []


async def test_company_rename_reaches_contact_search(client: httpx.AsyncClient, tenant: Tenant) -> None:
    company = await create(client, "/api/v1/companies", tenant.headers, name="天元贸易")
    contact = await create(client, CONTACTS, tenant.headers, first_name="伟", company_id=company["id"])
    await client.patch(f"/api/v1/companies/{company['id']}", headers=tenant.headers, json={"name": "远景科技"})
    found = (await client.get(CONTACTS, params={"q": "远景"}, headers=tenant.headers)).json()["items"]
    assert [c["id"] for c in found] == [contact["id"]]
    assert (await client.get(CONTACTS, params={"q": "天元"}, headers=tenant.headers)).json()["items"] == []
    await client.patch(f"{CONTACTS}/{contact['id']}", headers=tenant.headers, json={"company_id": None})
    assert (await client.get(CONTACTS, params={"q": "远景"}, headers=tenant.headers)).json()["items"] == []


async def test_archived_company_cannot_be_linked(client: httpx.AsyncClient, tenant: Tenant) -> None:
    company = await create(client, "/api/v1/companies", tenant.headers, name="旧公司")
    await client.delete(f"/api/v1/companies/{company['id']}", headers=tenant.headers)
    response = await client.post(
        CONTACTS, headers=tenant.headers, json={"first_name": "a", "company_id": company["id"]}
    )
    assert error_locs(response) == [["body", "company_id"]]


async def test_consent_is_recorded_with_time_and_source(client: httpx.AsyncClient, tenant: Tenant) -> None:
    contact = await create(client, CONTACTS, tenant.headers, first_name="a")
    url = f"{CONTACTS}/{contact['id']}"
    assert contact["email_opt_in"] is False and contact["email_opt_in_at"] is None
    opted_in = (
        await client.patch(url, headers=tenant.headers, json={"email_opt_in": True, "email_opt_in_source": "event"})
    ).json()
    assert opted_in["email_opt_in_at"] is not None and opted_in["email_opt_in_source"] == "event"
    opted_out = (await client.patch(url, headers=tenant.headers, json={"email_opt_in": False})).json()
    assert opted_out["email_opt_in"] is False and opted_out["email_opt_in_at"] >= opted_in["email_opt_in_at"]


@pytest.mark.parametrize("setting", ["own", "team"])
async def test_record_visibility_for_restricted_roles(client: httpx.AsyncClient, tenant: Tenant, setting: str) -> None:
    sales = await add_user(client, tenant, "sales")
    teammate = await add_user(client, tenant, "sales")
    stranger = await add_user(client, tenant, "sales")
    manager = await add_user(client, tenant, "manager")
    await create(client, "/api/v1/teams", tenant.headers, name="华东", member_ids=[sales.user_id, teammate.user_id])
    mine = await create(client, CONTACTS, sales.headers, first_name="mine")
    mates = await create(client, CONTACTS, teammate.headers, first_name="mates")
    theirs = await create(client, CONTACTS, stranger.headers, first_name="theirs")
    unowned = await create(client, CONTACTS, tenant.headers, first_name="unowned", owner_id=None)
    patched = await client.patch("/api/v1/organization", headers=tenant.headers, json={"record_visibility": setting})
    assert patched.status_code == 200

    async def visible(user: Tenant) -> set[str]:
        return {c["first_name"] for c in (await client.get(CONTACTS, headers=user.headers)).json()["items"]}

    expected = {"mine"} if setting == "own" else {"mine", "mates"}
    assert await visible(sales) == expected
    assert await visible(manager) == {"mine", "mates", "theirs", "unowned"}
    assert (await client.get(f"{CONTACTS}/{mine['id']}", headers=sales.headers)).status_code == 200
    hidden = [theirs, unowned] + ([mates] if setting == "own" else [])
    for record in hidden:
        assert_problem(await client.get(f"{CONTACTS}/{record['id']}", headers=sales.headers), 404)
        assert_problem(
            await client.patch(f"{CONTACTS}/{record['id']}", headers=sales.headers, json={"title": "x"}), 404
        )
        assert_problem(await client.get(f"{CONTACTS}/{record['id']}/history", headers=sales.headers), 404)
    search = await client.post(f"{CONTACTS}/search", headers=sales.headers, json={"q": "theirs"})
    assert search.json()["items"] == []


async def test_audit_rows_are_written_with_the_change(
    client: httpx.AsyncClient, tenant: Tenant, db: AsyncSession
) -> None:
    response = await client.post(
        CONTACTS, headers={**tenant.headers, "X-Request-ID": "audit-check-1"}, json={"first_name": "a"}
    )
    contact = response.json()
    entry = (await db.execute(select(AuditEntry).where(AuditEntry.entity_id == uuid.UUID(contact["id"])))).scalar_one()
    assert entry.action == "create" and entry.request_id == "audit-check-1"
    assert entry.changes["first_name"] == {"before": None, "after": "a"}
    assert str(entry.organization_id) == tenant.organization_id


async def test_a_consent_source_is_sent_with_the_consent(client: httpx.AsyncClient, tenant: Tenant) -> None:
    created = await client.post(
        "/api/v1/contacts",
        headers=tenant.headers,
        json={"first_name": "伟", "email_opt_in": True, "email_opt_in_source": "web form"},
    )
    cid = created.json()["id"]
    alone = await client.patch(f"/api/v1/contacts/{cid}", headers=tenant.headers, json={"email_opt_in_source": "x"})
    assert alone.status_code == 422, alone.text
    assert "send both" in alone.json()["detail"]
    withdrawn = await client.patch(
        f"/api/v1/contacts/{cid}",
        headers=tenant.headers,
        json={"email_opt_in": False, "email_opt_in_source": "unsubscribe link"},
    )
    assert withdrawn.status_code == 200, withdrawn.text
    assert (withdrawn.json()["email_opt_in"], withdrawn.json()["email_opt_in_source"]) == (False, "unsubscribe link")
