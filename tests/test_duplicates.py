"""GET /contacts/duplicates and /companies/duplicates: pairs, scores, reasons, pages."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
from hypothesis import given, settings
from hypothesis import strategies as st
from rapidfuzz import fuzz

from app.services import duplicates
from tests.helpers import Tenant, add_api_key, add_user


async def _contact(client: httpx.AsyncClient, tenant: Tenant, **fields: Any) -> str:
    response = await client.post("/api/v1/contacts", headers=tenant.headers, json=fields)
    assert response.status_code == 201, response.text
    return response.json()["id"]  # type: ignore[no-any-return]


async def _pairs(client: httpx.AsyncClient, tenant: Tenant, path: str = "contacts", **params: Any) -> dict[str, Any]:
    response = await client.get(f"/api/v1/{path}/duplicates", headers=tenant.headers, params=params)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def test_contacts_pair_on_email_phone_and_similar_names_at_one_company(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    company = (await client.post("/api/v1/companies", headers=tenant.headers, json={"name": "天元"})).json()["id"]
    other_company = (await client.post("/api/v1/companies", headers=tenant.headers, json={"name": "别家"})).json()["id"]
    a = await _contact(
        client, tenant, first_name="伟", last_name="张", email="zhang.wei@example.cn", phone="13800138000"
    )
    b = await _contact(
        client, tenant, first_name="Wei", last_name="Zhang", email="ZHANG.WEI@example.cn", phone="+86 138 0013 8000"
    )
    c = await _contact(client, tenant, first_name="Jonathan", last_name="Smith", company_id=company)
    d = await _contact(client, tenant, first_name="Jonathon", last_name="Smith", company_id=company)
    await _contact(client, tenant, first_name="Jonathan", last_name="Smith", company_id=other_company)
    await _contact(client, tenant, first_name="Anna", last_name="Lee", company_id=company)
    archived = await _contact(client, tenant, email="zhang.wei@example.cn")
    await client.delete(f"/api/v1/contacts/{archived}", headers=tenant.headers)

    items = (await _pairs(client, tenant))["items"]
    assert [sorted(p["ids"]) for p in items] == [sorted([a, b]), sorted([c, d])]
    strongest, fuzzy = items
    assert strongest["reasons"] == ["same e-mail", "same phone"]
    assert strongest["score"] == 0.98
    assert fuzzy["reasons"][0].startswith("similar name (")
    assert 0.5 < fuzzy["score"] < strongest["score"]


async def test_pages_follow_the_ranking(client: httpx.AsyncClient, tenant: Tenant) -> None:
    for i in range(5):
        await _contact(client, tenant, first_name=f"甲{i}", email=f"same{i}@example.cn")
        await _contact(client, tenant, first_name=f"乙{i}", email=f"same{i}@example.cn")
    first = await _pairs(client, tenant, limit=2)
    second = await _pairs(client, tenant, limit=2, cursor=first["next_cursor"])
    third = await _pairs(client, tenant, limit=2, cursor=second["next_cursor"])
    seen = [tuple(p["ids"]) for page in (first, second, third) for p in page["items"]]
    assert len(seen) == len(set(seen)) == 5
    assert third["next_cursor"] is None
    bad = await client.get("/api/v1/contacts/duplicates", headers=tenant.headers, params={"cursor": "nope"})
    assert bad.status_code == 422


async def test_companies_pair_on_domain_and_name(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    ids = []
    for body in (
        {"name": "上海天元贸易有限公司", "domain": "tianyuan-trade.cn"},
        {"name": "天元贸易", "domain": "https://www.tianyuan-trade.cn"},
        {"name": "上海天元贸易有限公司"},
    ):
        ids.append((await client.post("/api/v1/companies", headers=tenant.headers, json=body)).json()["id"])
    await client.post("/api/v1/companies", headers=other_tenant.headers, json={"name": "上海天元贸易有限公司"})
    items = (await _pairs(client, tenant, "companies"))["items"]
    assert {(tuple(sorted(p["ids"])), tuple(p["reasons"])) for p in items} == {
        (tuple(sorted([ids[0], ids[1]])), ("same domain",)),
        (tuple(sorted([ids[0], ids[2]])), ("same name",)),
    }
    assert (await _pairs(client, other_tenant, "companies"))["items"] == []


async def test_company_names_pair_apart_from_punctuation_spacing_and_legal_form(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    names = ["Acme Co., Ltd.", "ACME Ltd", "Acmeco", "上海天元贸易有限公司", "上海天元贸易", "天元贸易"]
    ids = {}
    for name in names:
        ids[name] = (await client.post("/api/v1/companies", headers=tenant.headers, json={"name": name})).json()["id"]
    items = (await _pairs(client, tenant, "companies"))["items"]
    found = {frozenset(p["ids"]): (p["reasons"], p["score"]) for p in items}
    assert set(found) == {
        frozenset([ids["Acme Co., Ltd."], ids["ACME Ltd"]]),
        frozenset([ids["上海天元贸易有限公司"], ids["上海天元贸易"]]),
    }
    assert all(
        reasons == ["same name but for punctuation or legal form"] and score == 0.5 for reasons, score in found.values()
    )


async def test_only_visible_records_pair(client: httpx.AsyncClient, tenant: Tenant) -> None:
    await client.patch("/api/v1/organization", headers=tenant.headers, json={"record_visibility": "own"})
    sales = await add_user(client, tenant, "sales")
    await _contact(client, tenant, first_name="老板", email="x@example.cn")
    await _contact(client, sales, first_name="我", email="x@example.cn")
    assert (await _pairs(client, sales))["items"] == []
    assert len((await _pairs(client, tenant))["items"]) == 1


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(alphabet="张伟王芳 lina", min_size=1, max_size=8), min_size=2, max_size=6))
def test_similar_names_are_those_token_sort_ratio_finds(names: list[str]) -> None:
    members = [(uuid.uuid4(), name) for name in names]
    pairs = duplicates._Pairs()
    duplicates._similar_names([members], pairs)
    found = {pair: round(float(p.reasons[0].split("(")[1].split("%")[0])) for pair, p in pairs.by_ids.items()}
    expected = {}
    for i, (a, name_a) in enumerate(members):
        for b, name_b in members[i + 1 :]:
            similarity = fuzz.token_sort_ratio(name_a, name_b)
            if similarity >= duplicates.NAME_SIMILARITY:
                expected[tuple(sorted((a, b)))] = round(similarity)
    assert found == expected


async def _scan(client: httpx.AsyncClient, tenant: Tenant, app: Any, path: str = "contacts") -> dict[str, Any]:
    requested = await client.post(f"/api/v1/{path}/duplicates/scans", headers=tenant.headers)
    assert requested.status_code == 202, requested.text
    scan_id = requested.json()["id"]
    assert requested.headers["location"] == f"/api/v1/{path}/duplicates/scans/{scan_id}"
    organization_id = uuid.UUID(tenant.organization_id)
    assert await duplicates.run_scan(app.state.session_factory, organization_id, uuid.UUID(scan_id)) == "done"
    assert await duplicates.run_scan(app.state.session_factory, organization_id, uuid.UUID(scan_id)) == "not pending"
    return (await client.get(f"/api/v1/{path}/duplicates/scans/{scan_id}", headers=tenant.headers)).json()  # type: ignore[no-any-return]


async def test_a_stored_scan_serves_the_pages_until_the_next(
    client: httpx.AsyncClient, tenant: Tenant, app: Any
) -> None:
    first_of_each = [await _contact(client, tenant, first_name=f"甲{i}", email=f"same{i}@example.cn") for i in range(3)]
    for i in range(3):
        await _contact(client, tenant, first_name=f"乙{i}", email=f"same{i}@example.cn")
    found_now = await _pairs(client, tenant)
    assert found_now["scan_id"] is None and len(found_now["items"]) == 3
    scan = await _scan(client, tenant, app)
    assert (scan["status"], scan["pairs"]) == ("done", 3)
    first = await _pairs(client, tenant, limit=2)
    assert first["scan_id"] == scan["id"] and first["scanned_at"] == scan["finished_at"]
    second = await _pairs(client, tenant, limit=2, cursor=first["next_cursor"])
    stored = [p for page in (first, second) for p in page["items"]]
    assert sorted(map(str, stored)) == sorted(map(str, found_now["items"])) and second["next_cursor"] is None

    # A pair whose record was archived (or merged) since the scan is no longer listed…
    await client.delete(f"/api/v1/contacts/{first_of_each[0]}", headers=tenant.headers)
    assert len((await _pairs(client, tenant))["items"]) == 2
    # …and a new pair appears with the next scan, which replaces the last.
    await _contact(client, tenant, first_name="丙", email="same2@example.cn")
    newer = await _scan(client, tenant, app)
    page = await _pairs(client, tenant)
    assert page["scan_id"] == newer["id"] and len(page["items"]) == 4


async def test_stored_pairs_respect_visibility_and_tenancy(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant, app: Any
) -> None:
    await client.patch("/api/v1/organization", headers=tenant.headers, json={"record_visibility": "own"})
    sales = await add_user(client, tenant, "sales")
    await _contact(client, tenant, first_name="老板", email="x@example.cn")
    await _contact(client, sales, first_name="我", email="x@example.cn")
    scan = await _scan(client, tenant, app)
    assert scan["pairs"] == 1
    assert (await _pairs(client, sales))["items"] == []
    assert len((await _pairs(client, tenant))["items"]) == 1
    missing = await client.get(f"/api/v1/contacts/duplicates/scans/{scan['id']}", headers=other_tenant.headers)
    assert missing.status_code == 404
    wrong_kind = await client.get(f"/api/v1/companies/duplicates/scans/{scan['id']}", headers=tenant.headers)
    assert wrong_kind.status_code == 404
    company_scan = await _scan(client, tenant, app, "companies")
    assert (company_scan["status"], company_scan["pairs"]) == ("done", 0)


async def test_a_reader_cannot_start_a_scan(client: httpx.AsyncClient, tenant: Tenant) -> None:
    reader = await add_api_key(client, tenant, scopes=["contacts:read"])
    refused = await client.post("/api/v1/contacts/duplicates/scans", headers=reader)
    assert refused.status_code == 403
