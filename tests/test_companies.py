"""Companies: CRUD, cleaning, concurrency control, archive, search, history, roles, scopes, tenancy."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models.audit import AuditEntry
from app.models.company import Company
from tests.helpers import Tenant, add_api_key, add_user, assert_problem, create, error_locs

COMPANIES = "/api/v1/companies"


async def _company_row(db: AsyncSession, company_id: str) -> Company:
    statement = select(Company).where(Company.id == uuid.UUID(company_id)).execution_options(populate_existing=True)
    return (await db.execute(statement)).scalar_one()


async def _company_count(db: AsyncSession, organization_id: str) -> int:
    statement = select(func.count()).select_from(Company).where(Company.organization_id == uuid.UUID(organization_id))
    return int(await db.scalar(statement) or 0)


async def test_create_cleans_and_returns_the_company(
    client: httpx.AsyncClient, tenant: Tenant, db: AsyncSession
) -> None:
    response = await client.post(
        COMPANIES,
        headers=tenant.headers,
        json={
            "name": " 上海天元贸易有限公司 ",
            "domain": "https://www.Example.COM/path?x=1",
            "industry": " 贸易 ",
            "size": "51-200",
            "phone": "021-6234 5678",
            "address_line1": "南京西路 1266 号",
            "city": "上海",
            "region": "上海市",
            "postal_code": "200040",
            "country": "cn",
            "tags": ["vip", " vip ", "华东", ""],
            "external_id": " C001 ",
        },
    )
    assert response.status_code == 201, response.text
    company = response.json()
    assert response.headers["location"] == f"{COMPANIES}/{company['id']}"
    assert response.headers["etag"] == 'W/"1"'
    assert company["name"] == "上海天元贸易有限公司"
    assert company["domain"] == "example.com"
    assert company["industry"] == "贸易" and company["size"] == "51-200"
    assert company["phone"] == "+862162345678"
    assert company["country"] == "CN"
    assert company["tags"] == ["vip", "华东"]
    assert company["external_id"] == "C001"
    assert company["owner_id"] == tenant.user_id
    assert company["custom_fields"] == {}
    assert company["archived_at"] is None and company["version"] == 1
    assert "search_text" not in company and "search_grams" not in company and "organization_id" not in company

    row = await _company_row(db, company["id"])
    assert str(row.organization_id) == tenant.organization_id
    assert (row.domain, row.phone, row.country, row.tags) == ("example.com", "+862162345678", "CN", ["vip", "华东"])
    got = await client.get(f"{COMPANIES}/{company['id']}", headers=tenant.headers)
    assert got.status_code == 200 and got.json() == company and got.headers["etag"] == 'W/"1"'


@pytest.mark.parametrize(
    ("domain", "expected"),
    [
        ("Example.COM", "example.com"),
        ("http://example.com:8080/x", "example.com"),
        ("www.tianyuan-trade.cn", "tianyuan-trade.cn"),
        ("sales@Tianyuan-Trade.CN", "tianyuan-trade.cn"),
        ("天元.中国", "xn--z4q65q.xn--fiqs8s"),
    ],
)
async def test_domains_are_normalised(client: httpx.AsyncClient, tenant: Tenant, domain: str, expected: str) -> None:
    company = await create(client, COMPANIES, tenant.headers, name="x", domain=domain)
    assert company["domain"] == expected


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({}, ["body", "name"]),
        ({"name": ""}, ["body", "name"]),
        ({"name": "   "}, ["body", "name"]),
        ({"name": None}, ["body", "name"]),
        ({"name": "x" * 301}, ["body", "name"]),
        ({"name": "x", "domain": "not a domain"}, ["body", "domain"]),
        ({"name": "x", "domain": "localhost"}, ["body", "domain"]),
        ({"name": "x", "domain": "-bad-.com"}, ["body", "domain"]),
        ({"name": "x", "size": "huge"}, ["body", "size"]),
        ({"name": "x", "size": "10"}, ["body", "size"]),
        ({"name": "x", "phone": "12"}, ["body", "phone"]),
        ({"name": "x", "country": "XX"}, ["body", "country"]),
        ({"name": "x", "country": "CHN"}, ["body", "country"]),
        ({"name": "x", "owner_id": "not-a-uuid"}, ["body", "owner_id"]),
        ({"name": "x", "tags": ["x" * 51]}, ["body", "tags"]),
        ({"name": "x", "password": "mass assignment"}, ["body", "password"]),
        ({"name": "x", "id": str(uuid.uuid4())}, ["body", "id"]),
        ({"name": "x", "archived_at": "2024-01-01T00:00:00Z"}, ["body", "archived_at"]),
        ({"name": "x", "version": 7}, ["body", "version"]),
    ],
)
async def test_validation_errors(
    client: httpx.AsyncClient, tenant: Tenant, db: AsyncSession, body: dict[str, Any], loc: list[Any]
) -> None:
    response = await client.post(COMPANIES, headers=tenant.headers, json=body)
    assert_problem(response, 422)
    assert loc in error_locs(response), error_locs(response)
    assert await _company_count(db, tenant.organization_id) == 0


async def test_owner_must_be_an_active_user_of_the_organisation(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    foreign = await client.post(COMPANIES, headers=tenant.headers, json={"name": "x", "owner_id": other_tenant.user_id})
    assert error_locs(foreign) == [["body", "owner_id"]]
    sales = await add_user(client, tenant, "sales")
    owned = await create(client, COMPANIES, tenant.headers, name="x", owner_id=sales.user_id)
    assert owned["owner_id"] == sales.user_id
    unowned = await create(client, COMPANIES, tenant.headers, name="y", owner_id=None)
    assert unowned["owner_id"] is None
    await client.post(f"/api/v1/users/{sales.user_id}/deactivate", headers=tenant.headers)
    deactivated = await client.post(COMPANIES, headers=tenant.headers, json={"name": "z", "owner_id": sales.user_id})
    assert error_locs(deactivated) == [["body", "owner_id"]]
    patched = await client.patch(
        f"{COMPANIES}/{unowned['id']}", headers=tenant.headers, json={"owner_id": other_tenant.user_id}
    )
    assert error_locs(patched) == [["body", "owner_id"]]


async def test_external_id_is_unique_per_organisation(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant, db: AsyncSession
) -> None:
    first = await create(client, COMPANIES, tenant.headers, name="a", external_id="C001")
    assert_problem(await client.post(COMPANIES, headers=tenant.headers, json={"name": "b", "external_id": "C001"}), 409)
    assert await _company_count(db, tenant.organization_id) == 1
    await create(client, COMPANIES, other_tenant.headers, name="a", external_id="C001")
    second = await create(client, COMPANIES, tenant.headers, name="b", external_id="C002")
    clash = await client.patch(f"{COMPANIES}/{second['id']}", headers=tenant.headers, json={"external_id": "C001"})
    assert_problem(clash, 409)
    assert (await _company_row(db, second["id"])).external_id == "C002"
    # Many companies may have none.
    await create(client, COMPANIES, tenant.headers, name="c")
    await create(client, COMPANIES, tenant.headers, name="d", external_id="  ")
    assert first["external_id"] == "C001"


async def test_update_changes_only_what_was_sent(client: httpx.AsyncClient, tenant: Tenant, db: AsyncSession) -> None:
    company = await create(
        client, COMPANIES, tenant.headers, name="天元", industry="贸易", city="上海", domain="tianyuan.cn"
    )
    url = f"{COMPANIES}/{company['id']}"
    response = await client.patch(
        url,
        headers=tenant.headers,
        json={"industry": "制造业", "city": None, "tags": ["vip"], "domain": "HTTPS://WWW.Tianyuan-Trade.cn/"},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["industry"], body["city"], body["tags"], body["name"]) == ("制造业", None, ["vip"], "天元")
    assert body["domain"] == "tianyuan-trade.cn"
    assert body["version"] == 2 and response.headers["etag"] == 'W/"2"'
    row = await _company_row(db, company["id"])
    assert (row.industry, row.city, row.domain, row.version) == ("制造业", None, "tianyuan-trade.cn", 2)
    for field in ("name", "tags", "custom_fields"):
        assert error_locs(await client.patch(url, headers=tenant.headers, json={field: None})) == [["body", field]]
    assert error_locs(await client.patch(url, headers=tenant.headers, json={"size": "huge"})) == [["body", "size"]]
    assert error_locs(await client.patch(url, headers=tenant.headers, json={"nope": 1})) == [["body", "nope"]]
    history = (await client.get(f"{url}/history", headers=tenant.headers)).json()["items"]
    assert [entry["action"] for entry in history] == ["update", "create"]
    assert history[0]["changes"]["industry"] == {"before": "贸易", "after": "制造业"}
    assert history[0]["changes"]["city"] == {"before": "上海", "after": None}
    assert "name" not in history[0]["changes"]
    assert history[0]["actor_id"] == tenant.user_id and history[0]["actor_type"] == "user"


async def test_stale_if_match_is_412_and_writes_nothing(
    client: httpx.AsyncClient, tenant: Tenant, db: AsyncSession
) -> None:
    company = await create(client, COMPANIES, tenant.headers, name="a")
    url = f"{COMPANIES}/{company['id']}"
    first = await client.patch(url, headers={**tenant.headers, "If-Match": 'W/"1"'}, json={"industry": "x"})
    assert first.status_code == 200
    stale = {**tenant.headers, "If-Match": 'W/"1"'}
    assert_problem(await client.patch(url, headers=stale, json={"industry": "lost update"}), 412)
    assert_problem(await client.delete(url, headers=stale), 412)
    assert_problem(await client.post(f"{url}/restore", headers=stale), 412)
    row = await _company_row(db, company["id"])
    assert (row.industry, row.version, row.archived_at) == ("x", 2, None)
    audit_rows = await db.scalar(select(func.count()).where(AuditEntry.entity_id == uuid.UUID(company["id"])))
    assert audit_rows == 2
    current = {**tenant.headers, "If-Match": 'W/"2"'}
    archived = await client.delete(url, headers=current)
    assert archived.status_code == 200 and archived.headers["etag"] == 'W/"3"'


async def test_archive_and_restore(client: httpx.AsyncClient, tenant: Tenant, db: AsyncSession) -> None:
    company = await create(client, COMPANIES, tenant.headers, name="a")
    other = await create(client, COMPANIES, tenant.headers, name="b")
    url = f"{COMPANIES}/{company['id']}"
    archived = await client.delete(url, headers=tenant.headers)
    assert archived.status_code == 200 and archived.json()["archived_at"] is not None
    assert archived.json()["version"] == 2
    assert (await _company_row(db, company["id"])).archived_at is not None
    assert (await client.get(url, headers=tenant.headers)).json()["archived_at"] is not None
    listed = (await client.get(COMPANIES, headers=tenant.headers)).json()["items"]
    assert [c["id"] for c in listed] == [other["id"]]
    in_archive = (await client.get(COMPANIES, params={"archived": "true"}, headers=tenant.headers)).json()["items"]
    assert [c["id"] for c in in_archive] == [company["id"]]
    searched = await client.post(f"{COMPANIES}/search", headers=tenant.headers, json={"archived": True})
    assert [c["id"] for c in searched.json()["items"]] == [company["id"]]
    assert_problem(await client.patch(url, headers=tenant.headers, json={"industry": "x"}), 409)
    assert_problem(await client.delete(url, headers=tenant.headers), 409)
    assert (await _company_row(db, company["id"])).industry is None

    restored = await client.post(f"{url}/restore", headers=tenant.headers)
    assert restored.status_code == 200 and restored.json()["archived_at"] is None
    assert restored.json()["version"] == 3 and restored.headers["etag"] == 'W/"3"'
    assert (await _company_row(db, company["id"])).archived_at is None
    assert_problem(await client.post(f"{url}/restore", headers=tenant.headers), 409)
    listed = (await client.get(COMPANIES, headers=tenant.headers)).json()["items"]
    assert {c["id"] for c in listed} == {company["id"], other["id"]}
    actions = [e["action"] for e in (await client.get(f"{url}/history", headers=tenant.headers)).json()["items"]]
    assert actions == ["restore", "delete", "create"]


async def test_another_organisations_ids_are_404_everywhere(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant, db: AsyncSession
) -> None:
    theirs = await create(client, COMPANIES, other_tenant.headers, name="秘密公司", external_id="S1")
    url = f"{COMPANIES}/{theirs['id']}"
    for method, path, body in [
        ("GET", url, None),
        ("PATCH", url, {"industry": "x"}),
        ("DELETE", url, None),
        ("POST", f"{url}/restore", None),
        ("GET", f"{url}/history", None),
    ]:
        assert_problem(await client.request(method, path, headers=tenant.headers, json=body), 404)
    row = await _company_row(db, theirs["id"])
    assert (row.industry, row.archived_at, row.version) == (None, None, 1)
    await client.delete(url, headers=other_tenant.headers)
    assert_problem(await client.post(f"{url}/restore", headers=tenant.headers), 404)
    assert (await _company_row(db, theirs["id"])).archived_at is not None
    assert_problem(await client.get(f"{COMPANIES}/{uuid.uuid4()}", headers=tenant.headers), 404)
    assert (await client.get(COMPANIES, params={"external_id": "S1"}, headers=tenant.headers)).json()["items"] == []
    search = await client.post(f"{COMPANIES}/search", headers=tenant.headers, json={"q": "秘密"})
    assert search.json()["items"] == []


async def test_viewer_and_support_cannot_write(client: httpx.AsyncClient, tenant: Tenant, db: AsyncSession) -> None:
    company = await create(client, COMPANIES, tenant.headers, name="a")
    url = f"{COMPANIES}/{company['id']}"
    for role in ("viewer", "support", "marketing"):
        person = await add_user(client, tenant, role)
        assert (await client.get(url, headers=person.headers)).status_code == 200, role
        assert (await client.get(COMPANIES, headers=person.headers)).status_code == 200, role
        assert (await client.get(f"{url}/history", headers=person.headers)).status_code == 200, role
        assert (await client.post(f"{COMPANIES}/search", headers=person.headers, json={})).status_code == 200
        assert_problem(await client.post(COMPANIES, headers=person.headers, json={"name": "b"}), 403)
        assert_problem(await client.patch(url, headers=person.headers, json={"industry": "x"}), 403)
        assert_problem(await client.delete(url, headers=person.headers), 403)
        assert_problem(await client.post(f"{url}/restore", headers=person.headers), 403)
    assert await _company_count(db, tenant.organization_id) == 1
    row = await _company_row(db, company["id"])
    assert (row.industry, row.archived_at, row.version) == (None, None, 1)


@pytest.mark.parametrize("role", ["sales", "manager", "admin"])
async def test_record_writers_can_write(client: httpx.AsyncClient, tenant: Tenant, role: str) -> None:
    person = await add_user(client, tenant, role)
    company = await create(client, COMPANIES, person.headers, name="a")
    assert company["owner_id"] == person.user_id
    url = f"{COMPANIES}/{company['id']}"
    assert (await client.patch(url, headers=person.headers, json={"industry": "x"})).status_code == 200
    assert (await client.delete(url, headers=person.headers)).status_code == 200
    assert (await client.post(f"{url}/restore", headers=person.headers)).status_code == 200


async def test_api_key_scopes(client: httpx.AsyncClient, tenant: Tenant) -> None:
    company = await create(client, COMPANIES, tenant.headers, name="a")
    url = f"{COMPANIES}/{company['id']}"
    reader = await add_api_key(client, tenant, ["companies:read"])
    assert (await client.get(url, headers=reader)).status_code == 200
    assert (await client.get(COMPANIES, headers=reader)).status_code == 200
    assert (await client.post(f"{COMPANIES}/search", headers=reader, json={})).status_code == 200
    assert_problem(await client.post(COMPANIES, headers=reader, json={"name": "b"}), 403)
    assert_problem(await client.patch(url, headers=reader, json={"industry": "x"}), 403)
    assert_problem(await client.delete(url, headers=reader), 403)
    contacts_only = await add_api_key(client, tenant, ["contacts:read", "contacts:write"])
    assert_problem(await client.get(url, headers=contacts_only), 403)
    assert_problem(await client.get(COMPANIES, headers=contacts_only), 403)
    assert_problem(await client.post(COMPANIES, headers=contacts_only, json={"name": "b"}), 403)

    writer = await add_api_key(client, tenant, ["companies:write"])
    created = await client.post(COMPANIES, headers=writer, json={"name": "from ERP", "external_id": "ERP-1"})
    assert created.status_code == 201, created.text
    assert created.json()["owner_id"] is None
    history = (await client.get(f"{COMPANIES}/{created.json()['id']}/history", headers=tenant.headers)).json()
    assert history["items"][0]["actor_type"] == "api_key"
    assert_problem(await client.get(COMPANIES), 401)


async def test_list_filters_and_sorts(client: httpx.AsyncClient, tenant: Tenant) -> None:
    sales = await add_user(client, tenant, "sales")
    rows = [
        {
            "name": "A",
            "domain": "a.cn",
            "industry": "贸易",
            "size": "51-200",
            "city": "上海",
            "region": "上海市",
            "country": "CN",
            "tags": ["vip"],
        },
        {"name": "B", "industry": "制造业", "size": "1-10", "city": "北京", "country": "CN", "external_id": "C002"},
        {"name": "C", "domain": "c.de", "industry": "贸易", "city": "上海", "country": "DE", "owner_id": sales.user_id},
        {"name": "D", "tags": ["vip", "new"]},
    ]
    for row in rows:
        await create(client, COMPANIES, tenant.headers, **row)

    async def listed(**params: Any) -> list[str]:
        response = await client.get(COMPANIES, params=params, headers=tenant.headers)
        assert response.status_code == 200, response.text
        return [c["name"] for c in response.json()["items"]]

    assert await listed() == ["A", "B", "C", "D"]
    assert await listed(domain="a.cn") == ["A"]
    assert await listed(domain="https://www.A.CN/about") == ["A"]
    assert await listed(industry="贸易") == ["A", "C"]
    assert await listed(size="51-200") == ["A"]
    assert await listed(size="1-10") == ["B"]
    assert await listed(city="上海") == ["A", "C"]
    assert await listed(region="上海市") == ["A"]
    assert await listed(city="上海", industry="贸易", country="DE") == ["C"]
    assert await listed(country="cn") == ["A", "B"]
    assert await listed(tag="vip") == ["A", "D"]
    assert await listed(tag="new") == ["D"]
    assert await listed(owner_id=sales.user_id) == ["C"]
    assert await listed(owner_id=tenant.user_id) == ["A", "B", "D"]
    assert await listed(external_id="C002") == ["B"]
    assert await listed(industry="nothing") == []
    assert await listed(sort="-name") == ["D", "C", "B", "A"]
    # Text sorts by code point (上 U+4E0A before 北 U+5317); NULLs last ascending, first descending.
    assert await listed(sort="city,name") == ["A", "C", "B", "D"]
    assert await listed(sort="-city,name") == ["D", "B", "A", "C"]
    assert await listed(sort="size,-name") == ["B", "A", "D", "C"]
    assert await listed(sort="-id") == ["D", "C", "B", "A"]
    for params, loc in [
        ({"size": "huge"}, ["query", "size"]),
        ({"country": "XX"}, ["query", "country"]),
        ({"domain": "not a domain"}, ["query", "domain"]),
        ({"owner_id": "nope"}, ["query", "owner_id"]),
        ({"sort": "password_hash"}, ["query", "sort"]),
    ]:
        response = await client.get(COMPANIES, params=params, headers=tenant.headers)
        assert_problem(response, 422)
        assert loc in error_locs(response), (params, error_locs(response))


async def test_paging_returns_each_company_once(client: httpx.AsyncClient, tenant: Tenant) -> None:
    cities = ["上海", None, "北京", None, "上海", "广州", None]
    for index, city in enumerate(cities):
        await create(client, COMPANIES, tenant.headers, name=f"c{index % 3}", city=city)
    for sort in ("city,name", "-city,name", "name,-city", "-created_at"):
        full = (await client.get(COMPANIES, params={"sort": sort, "limit": 500}, headers=tenant.headers)).json()
        seen: list[str] = []
        cursor = None
        while True:
            params: dict[str, Any] = {"sort": sort, "limit": 2}
            if cursor:
                params["cursor"] = cursor
            page = (await client.get(COMPANIES, params=params, headers=tenant.headers)).json()
            seen += [c["id"] for c in page["items"]]
            cursor = page["next_cursor"]
            if not cursor:
                break
        assert seen == [c["id"] for c in full["items"]], sort
        assert len(seen) == len(cities)


async def test_search_dsl(client: httpx.AsyncClient, tenant: Tenant) -> None:
    for row in [
        {"name": "A", "city": "上海", "industry": "贸易", "size": "51-200", "tags": ["vip"]},
        {"name": "B", "city": "北京", "industry": "制造业", "size": "1-10", "tags": ["vip", "new"]},
        {"name": "C", "city": "上海", "industry": "制造业", "domain": "c-corp.cn"},
        {"name": "D", "industry": "Software Development"},
    ]:
        await create(client, COMPANIES, tenant.headers, **row)

    async def found(filter_: dict[str, Any], **extra: Any) -> list[str]:
        response = await client.post(
            f"{COMPANIES}/search", headers=tenant.headers, json={"filter": filter_, "sort": ["name"], **extra}
        )
        assert response.status_code == 200, response.text
        return [c["name"] for c in response.json()["items"]]

    assert await found({"field": "city", "op": "eq", "value": "上海"}) == ["A", "C"]
    assert await found(
        {"and": [{"field": "city", "op": "eq", "value": "上海"}, {"field": "industry", "op": "eq", "value": "制造业"}]}
    ) == ["C"]
    assert await found(
        {"or": [{"field": "city", "op": "eq", "value": "北京"}, {"field": "domain", "op": "is_null", "value": False}]}
    ) == ["B", "C"]
    assert await found({"not": {"field": "city", "op": "eq", "value": "上海"}}) == ["B", "D"]
    assert await found({"field": "city", "op": "ne", "value": "上海"}) == ["B", "D"]
    assert await found({"field": "city", "op": "is_null", "value": True}) == ["D"]
    assert await found({"field": "size", "op": "in", "value": ["1-10", "51-200"]}) == ["A", "B"]
    assert await found({"field": "size", "op": "eq", "value": "51-200"}) == ["A"]
    assert await found({"field": "tags", "op": "contains", "value": "vip"}) == ["A", "B"]
    assert await found({"field": "tags", "op": "in", "value": ["new", "nothing"]}) == ["B"]
    assert await found({"field": "tags", "op": "is_null", "value": True}) == ["C", "D"]
    assert await found({"field": "industry", "op": "contains", "value": "software"}) == ["D"]
    assert await found({"field": "industry", "op": "starts_with", "value": "制造"}) == ["B", "C"]
    assert await found({"field": "name", "op": "gte", "value": "C"}) == ["C", "D"]
    assert await found({"field": "created_at", "op": "gt", "value": "2000-01-01T00:00:00Z"}) == ["A", "B", "C", "D"]
    assert await found({"field": "owner_id", "op": "eq", "value": tenant.user_id}) == ["A", "B", "C", "D"]
    assert await found({"field": "city", "op": "eq", "value": "上海"}, q="c-corp") == ["C"]
    paged = await client.post(f"{COMPANIES}/search", headers=tenant.headers, json={"sort": ["-name"], "limit": 3})
    assert [c["name"] for c in paged.json()["items"]] == ["D", "C", "B"]
    rest = await client.post(
        f"{COMPANIES}/search",
        headers=tenant.headers,
        json={"sort": ["-name"], "limit": 3, "cursor": paged.json()["next_cursor"]},
    )
    assert [c["name"] for c in rest.json()["items"]] == ["A"] and rest.json()["next_cursor"] is None


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"filter": {"field": "search_text", "op": "eq", "value": "x"}}, ["body", "filter", "field"]),
        ({"filter": {"field": "lifecycle_stage", "op": "eq", "value": "lead"}}, ["body", "filter", "field"]),
        ({"filter": {"field": "size", "op": "eq", "value": "huge"}}, ["body", "filter", "value"]),
        ({"filter": {"field": "size", "op": "gt", "value": "1-10"}}, ["body", "filter", "op"]),
        ({"filter": {"field": "tags", "op": "eq", "value": "vip"}}, ["body", "filter", "op"]),
        ({"filter": {"field": "owner_id", "op": "eq", "value": "me"}}, ["body", "filter", "value"]),
        ({"sort": ["password_hash"]}, ["body", "sort"]),
        ({"limit": 0}, ["body", "limit"]),
        ({"unknown": True}, ["body", "unknown"]),
    ],
)
async def test_search_rejects_bad_requests(
    client: httpx.AsyncClient, tenant: Tenant, body: dict[str, Any], loc: list[Any]
) -> None:
    response = await client.post(f"{COMPANIES}/search", headers=tenant.headers, json=body)
    assert_problem(response, 422)
    assert loc in error_locs(response), error_locs(response)


async def test_q_finds_chinese_name_fragments_domains_and_phones(client: httpx.AsyncClient, tenant: Tenant) -> None:
    await create(
        client,
        COMPANIES,
        tenant.headers,
        name="上海天元贸易有限公司",
        domain="tianyuan-trade.cn",
        phone="021-6234 5678",
    )
    await create(
        client, COMPANIES, tenant.headers, name="北京远景科技", domain="vision.com.cn", phone="+1 415 555 0100"
    )
    await create(client, COMPANIES, tenant.headers, name="Acme GmbH", domain="acme.de")

    async def q(text: str) -> list[str]:
        response = await client.get(COMPANIES, params={"q": text}, headers=tenant.headers)
        assert response.status_code == 200, response.text
        return sorted(c["name"] for c in response.json()["items"])

    assert await q("上海") == ["上海天元贸易有限公司"]
    assert await q("天元") == ["上海天元贸易有限公司"]
    assert await q("贸易有限") == ["上海天元贸易有限公司"]
    assert await q("公司") == ["上海天元贸易有限公司"]
    assert await q("远景") == ["北京远景科技"]
    assert await q("京") == ["北京远景科技"]
    assert await q("tianyuan") == ["上海天元贸易有限公司"]
    assert await q("TRADE.CN") == ["上海天元贸易有限公司"]
    assert await q(".cn") == ["上海天元贸易有限公司", "北京远景科技"]
    assert await q("acme") == ["Acme GmbH"]
    assert await q("ＡＣＭＥ") == ["Acme GmbH"]  # full-width input
    assert await q("62345678") == ["上海天元贸易有限公司"]
    assert await q("021 6234") == ["上海天元贸易有限公司"]
    assert await q("+86 21 6234 5678") == ["上海天元贸易有限公司"]
    assert await q("415-555") == ["北京远景科技"]
    assert await q("天元 tianyuan") == ["上海天元贸易有限公司"]
    assert await q("天元 acme") == []
    assert await q("深圳") == []
    searched = await client.post(f"{COMPANIES}/search", headers=tenant.headers, json={"q": "天元"})
    assert [c["name"] for c in searched.json()["items"]] == ["上海天元贸易有限公司"]


async def test_q_follows_renames_and_new_domains(client: httpx.AsyncClient, tenant: Tenant) -> None:
    company = await create(client, COMPANIES, tenant.headers, name="天元贸易", domain="tianyuan.cn")
    url = f"{COMPANIES}/{company['id']}"
    await client.patch(
        url, headers=tenant.headers, json={"name": "远景科技", "domain": "vision.cn", "phone": "13800138000"}
    )

    async def q(text: str) -> list[str]:
        return [
            c["id"] for c in (await client.get(COMPANIES, params={"q": text}, headers=tenant.headers)).json()["items"]
        ]

    assert await q("远景") == [company["id"]]
    assert await q("vision") == [company["id"]]
    assert await q("0013") == [company["id"]]
    assert await q("天元") == []
    assert await q("tianyuan") == []


async def test_history(client: httpx.AsyncClient, tenant: Tenant) -> None:
    company = await create(client, COMPANIES, tenant.headers, name="天元", industry="贸易")
    url = f"{COMPANIES}/{company['id']}"
    sales = await add_user(client, tenant, "sales")
    await client.patch(url, headers=sales.headers, json={"industry": "制造业"})
    await client.patch(url, headers=tenant.headers, json={"name": "远景"})
    await client.delete(url, headers=tenant.headers)
    await client.post(f"{url}/restore", headers=tenant.headers)
    response = await client.get(f"{url}/history", headers=tenant.headers)
    assert response.status_code == 200
    items = response.json()["items"]
    assert [e["action"] for e in items] == ["restore", "delete", "update", "update", "create"]
    assert all(e["entity_type"] == "company" and e["entity_id"] == company["id"] for e in items)
    assert items[3]["actor_id"] == sales.user_id
    assert items[3]["changes"] == {"industry": {"before": "贸易", "after": "制造业"}}
    assert items[2]["changes"] == {"name": {"before": "天元", "after": "远景"}}
    assert items[4]["changes"]["name"] == {"before": None, "after": "天元"}
    assert items[1]["changes"]["archived_at"]["before"] is None
    assert items[0]["changes"]["archived_at"]["after"] is None
    # Paged, newest first, each entry once.
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = (await client.get(f"{url}/history", params=params, headers=tenant.headers)).json()
        seen += [e["id"] for e in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == [e["id"] for e in items]
    # A PATCH that changes nothing writes no history.
    await client.patch(url, headers=tenant.headers, json={"name": "远景"})
    assert len((await client.get(f"{url}/history", headers=tenant.headers)).json()["items"]) == 5


async def test_archived_company_is_kept_out_of_default_search(client: httpx.AsyncClient, tenant: Tenant) -> None:
    company = await create(client, COMPANIES, tenant.headers, name="旧公司")
    await client.delete(f"{COMPANIES}/{company['id']}", headers=tenant.headers)
    assert (await client.get(COMPANIES, params={"q": "旧公司"}, headers=tenant.headers)).json()["items"] == []
    archived = await client.get(COMPANIES, params={"q": "旧公司", "archived": "true"}, headers=tenant.headers)
    assert [c["id"] for c in archived.json()["items"]] == [company["id"]]


async def test_idempotent_replay_creates_one_company(
    client: httpx.AsyncClient, tenant: Tenant, db: AsyncSession
) -> None:
    headers = {**tenant.headers, "Idempotency-Key": str(uuid.uuid4())}
    first = await client.post(COMPANIES, headers=headers, json={"name": "天元"})
    second = await client.post(COMPANIES, headers=headers, json={"name": "天元"})
    assert first.status_code == second.status_code == 201
    assert second.json() == first.json() and second.headers["idempotent-replayed"] == "true"
    assert second.headers["etag"] == first.headers["etag"]
    assert await _company_count(db, tenant.organization_id) == 1
    assert error_locs(await client.post(COMPANIES, headers=headers, json={"name": "远景"})) == [
        ["header", "Idempotency-Key"]
    ]
    assert await _company_count(db, tenant.organization_id) == 1


@pytest.mark.parametrize("setting", ["own", "team"])
async def test_record_visibility_for_restricted_roles(client: httpx.AsyncClient, tenant: Tenant, setting: str) -> None:
    sales = await add_user(client, tenant, "sales")
    teammate = await add_user(client, tenant, "support")
    stranger = await add_user(client, tenant, "sales")
    viewer = await add_user(client, tenant, "viewer")
    await create(client, "/api/v1/teams", tenant.headers, name="华东", member_ids=[sales.user_id, teammate.user_id])
    mine = await create(client, COMPANIES, sales.headers, name="mine")
    mates = await create(client, COMPANIES, tenant.headers, name="mates", owner_id=teammate.user_id)
    theirs = await create(client, COMPANIES, stranger.headers, name="theirs")
    unowned = await create(client, COMPANIES, tenant.headers, name="unowned", owner_id=None)
    patched = await client.patch("/api/v1/organization", headers=tenant.headers, json={"record_visibility": setting})
    assert patched.status_code == 200

    async def visible(user: Tenant) -> set[str]:
        return {c["name"] for c in (await client.get(COMPANIES, headers=user.headers)).json()["items"]}

    expected = {"mine"} if setting == "own" else {"mine", "mates"}
    assert await visible(sales) == expected
    assert await visible(viewer) == {"mine", "mates", "theirs", "unowned"}
    assert (await client.get(f"{COMPANIES}/{mine['id']}", headers=sales.headers)).status_code == 200
    hidden = [theirs, unowned] + ([mates] if setting == "own" else [])
    for record in hidden:
        url = f"{COMPANIES}/{record['id']}"
        assert_problem(await client.get(url, headers=sales.headers), 404)
        assert_problem(await client.patch(url, headers=sales.headers, json={"industry": "x"}), 404)
        assert_problem(await client.delete(url, headers=sales.headers), 404)
        assert_problem(await client.get(f"{url}/history", headers=sales.headers), 404)
    search = await client.post(f"{COMPANIES}/search", headers=sales.headers, json={"q": "theirs"})
    assert search.json()["items"] == []
    # Giving a visible company away hides it.
    given = await client.patch(f"{COMPANIES}/{mine['id']}", headers=sales.headers, json={"owner_id": stranger.user_id})
    assert given.status_code == 200
    assert_problem(await client.get(f"{COMPANIES}/{mine['id']}", headers=sales.headers), 404)
