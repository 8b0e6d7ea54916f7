"""Products: the catalogue's CRUD, prices and currencies, SKU rules, listing, roles, scopes, tenancy."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models.audit import AuditEntry
from app.models.product import Product
from tests.helpers import Tenant, add_api_key, add_user, assert_problem, create, error_locs

PRODUCTS = "/api/v1/products"
AUDIT = "/api/v1/audit-log"


async def _product_row(db: AsyncSession, product_id: str) -> Product:
    statement = select(Product).where(Product.id == uuid.UUID(product_id)).execution_options(populate_existing=True)
    return (await db.execute(statement)).scalar_one()


async def _product_count(db: AsyncSession, organization_id: str) -> int:
    statement = select(func.count()).select_from(Product).where(Product.organization_id == uuid.UUID(organization_id))
    return int(await db.scalar(statement) or 0)


async def _product(client: httpx.AsyncClient, tenant: Tenant, sku: str, **body: Any) -> dict[str, Any]:
    return await create(
        client, PRODUCTS, tenant.headers, **{"sku": sku, "name": f"产品 {sku}", "price": "1.00", **body}
    )


async def _audit(client: httpx.AsyncClient, tenant: Tenant, entity_id: str) -> list[dict[str, Any]]:
    response = await client.get(AUDIT, headers=tenant.headers, params={"entity_id": entity_id})
    assert response.status_code == 200, response.text
    return response.json()["items"]  # type: ignore[no-any-return]


async def _list(client: httpx.AsyncClient, tenant: Tenant, **params: Any) -> dict[str, Any]:
    response = await client.get(PRODUCTS, headers=tenant.headers, params=params)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def test_create_returns_the_product(client: httpx.AsyncClient, tenant: Tenant, db: AsyncSession) -> None:
    response = await client.post(
        PRODUCTS,
        headers=tenant.headers,
        json={"sku": " ERP-STD ", "name": "ERP 标准版（年）", "description": " 含实施 ", "price": "12800.00"},
    )
    assert response.status_code == 201, response.text
    product = response.json()
    assert response.headers["location"] == f"{PRODUCTS}/{product['id']}"
    assert response.headers["etag"] == 'W/"1"'
    assert (product["sku"], product["name"], product["description"]) == ("ERP-STD", "ERP 标准版（年）", "含实施")
    assert (product["price"], product["currency"], product["active"], product["version"]) == (
        "12800.00",
        "CNY",
        True,
        1,
    )
    assert "organization_id" not in product

    row = await _product_row(db, product["id"])
    assert str(row.organization_id) == tenant.organization_id
    assert (row.sku, row.price, row.currency) == ("ERP-STD", Decimal("12800.00"), "CNY")
    got = await client.get(f"{PRODUCTS}/{product['id']}", headers=tenant.headers)
    assert got.status_code == 200 and got.json() == product and got.headers["etag"] == 'W/"1"'

    [entry] = await _audit(client, tenant, product["id"])
    assert (entry["entity_type"], entry["action"], entry["actor_id"]) == ("product", "create", tenant.user_id)
    assert entry["changes"]["sku"]["after"] == "ERP-STD"


@pytest.mark.parametrize(
    ("price", "expected"),
    [
        ("12800.00", "12800.00"),
        ("12800", "12800.00"),
        (12800, "12800.00"),
        ("0", "0.00"),
        (0, "0.00"),
        ("99.5", "99.50"),
        (99.5, "99.50"),
        ("0.01", "0.01"),
        ("9999999999999999.99", "9999999999999999.99"),
    ],
)
async def test_prices_are_decimal_strings_with_cents(
    client: httpx.AsyncClient, tenant: Tenant, db: AsyncSession, price: Any, expected: str
) -> None:
    product = await _product(client, tenant, "P1", price=price)
    assert product["price"] == expected
    got = await client.get(f"{PRODUCTS}/{product['id']}", headers=tenant.headers)
    assert got.json()["price"] == expected
    assert (await _product_row(db, product["id"])).price == Decimal(expected)
    patched = await client.patch(f"{PRODUCTS}/{product['id']}", headers=tenant.headers, json={"price": price})
    assert patched.status_code == 200 and patched.json()["price"] == expected


@pytest.mark.parametrize(("currency", "expected"), [("USD", "USD"), ("cny", "CNY"), (" eur ", "EUR")])
async def test_currency_is_normalised(client: httpx.AsyncClient, tenant: Tenant, currency: str, expected: str) -> None:
    product = await _product(client, tenant, "P1", currency=currency)
    assert product["currency"] == expected


async def test_currency_defaults_to_the_organisations(client: httpx.AsyncClient, tenant: Tenant) -> None:
    assert (await _product(client, tenant, "P1"))["currency"] == "CNY"
    changed = await client.patch("/api/v1/organization", headers=tenant.headers, json={"currency": "HKD"})
    assert changed.status_code == 200, changed.text
    assert (await _product(client, tenant, "P2"))["currency"] == "HKD"
    assert (await _product(client, tenant, "P3", currency="USD"))["currency"] == "USD"


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"name": "x", "price": "1"}, ["body", "sku"]),
        ({"sku": "", "name": "x", "price": "1"}, ["body", "sku"]),
        ({"sku": "   ", "name": "x", "price": "1"}, ["body", "sku"]),
        ({"sku": "x" * 65, "name": "x", "price": "1"}, ["body", "sku"]),
        ({"sku": "A", "price": "1"}, ["body", "name"]),
        ({"sku": "A", "name": "", "price": "1"}, ["body", "name"]),
        ({"sku": "A", "name": "x" * 301, "price": "1"}, ["body", "name"]),
        ({"sku": "A", "name": "x"}, ["body", "price"]),
        ({"sku": "A", "name": "x", "price": None}, ["body", "price"]),
        ({"sku": "A", "name": "x", "price": "-0.01"}, ["body", "price"]),
        ({"sku": "A", "name": "x", "price": -1}, ["body", "price"]),
        ({"sku": "A", "name": "x", "price": "abc"}, ["body", "price"]),
        ({"sku": "A", "name": "x", "price": "1.234"}, ["body", "price"]),
        ({"sku": "A", "name": "x", "price": "NaN"}, ["body", "price"]),
        ({"sku": "A", "name": "x", "price": "Infinity"}, ["body", "price"]),
        ({"sku": "A", "name": "x", "price": "10000000000000000"}, ["body", "price"]),
        ({"sku": "A", "name": "x", "price": "1", "currency": "XYZ"}, ["body", "currency"]),
        ({"sku": "A", "name": "x", "price": "1", "currency": "CN"}, ["body", "currency"]),
        ({"sku": "A", "name": "x", "price": "1", "currency": "CNYY"}, ["body", "currency"]),
        ({"sku": "A", "name": "x", "price": "1", "active": "maybe"}, ["body", "active"]),
        ({"sku": "A", "name": "x", "price": "1", "description": "x" * 2001}, ["body", "description"]),
        ({"sku": "A", "name": "x", "price": "1", "id": str(uuid.uuid4())}, ["body", "id"]),
        ({"sku": "A", "name": "x", "price": "1", "version": 2}, ["body", "version"]),
        ({"sku": "A", "name": "x", "price": "1", "organization_id": str(uuid.uuid4())}, ["body", "organization_id"]),
    ],
)
async def test_validation_errors(
    client: httpx.AsyncClient, tenant: Tenant, db: AsyncSession, body: dict[str, Any], loc: list[Any]
) -> None:
    response = await client.post(PRODUCTS, headers=tenant.headers, json=body)
    assert_problem(response, 422)
    assert loc in error_locs(response), error_locs(response)
    assert await _product_count(db, tenant.organization_id) == 0


async def test_sku_is_unique_per_organisation(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant, db: AsyncSession
) -> None:
    await _product(client, tenant, "ERP-STD")
    clash = await client.post(PRODUCTS, headers=tenant.headers, json={"sku": "ERP-STD", "name": "x", "price": "2"})
    assert "SKU" in assert_problem(clash, 409)["detail"]
    assert await _product_count(db, tenant.organization_id) == 1
    # Another organisation's catalogue is its own.
    await _product(client, other_tenant, "ERP-STD")
    second = await _product(client, tenant, "ERP-PRO")
    renamed = await client.patch(f"{PRODUCTS}/{second['id']}", headers=tenant.headers, json={"sku": "ERP-STD"})
    assert_problem(renamed, 409)
    assert (await _product_row(db, second["id"])).sku == "ERP-PRO"


async def test_update_changes_only_what_was_sent(client: httpx.AsyncClient, tenant: Tenant, db: AsyncSession) -> None:
    product = await _product(client, tenant, "ERP-STD", description="含实施", price="12800")
    url = f"{PRODUCTS}/{product['id']}"
    response = await client.patch(
        url, headers=tenant.headers, json={"price": "13800.5", "currency": "usd", "description": None}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["price"], body["currency"], body["description"]) == ("13800.50", "USD", None)
    assert (body["sku"], body["name"], body["active"]) == ("ERP-STD", product["name"], True)
    assert body["version"] == 2 and response.headers["etag"] == 'W/"2"'
    row = await _product_row(db, product["id"])
    assert (row.price, row.currency, row.description, row.version) == (Decimal("13800.50"), "USD", None, 2)
    # The same values again change nothing.
    same = await client.patch(url, headers=tenant.headers, json={"price": "13800.50", "currency": "USD"})
    assert same.status_code == 200 and same.json()["version"] == 2

    for field in ("sku", "name", "price", "currency", "active"):
        assert error_locs(await client.patch(url, headers=tenant.headers, json={field: None})) == [["body", field]]
    assert error_locs(await client.patch(url, headers=tenant.headers, json={"price": "-1"})) == [["body", "price"]]
    assert error_locs(await client.patch(url, headers=tenant.headers, json={"currency": "XYZ"})) == [
        ["body", "currency"]
    ]
    assert error_locs(await client.patch(url, headers=tenant.headers, json={"nope": 1})) == [["body", "nope"]]
    assert (await _product_row(db, product["id"])).version == 2

    entries = await _audit(client, tenant, product["id"])
    assert [e["action"] for e in entries] == ["update", "create"]
    assert entries[0]["changes"]["price"] == {"before": "12800.00", "after": "13800.50"}
    assert entries[0]["changes"]["currency"] == {"before": "CNY", "after": "USD"}
    assert entries[0]["changes"]["description"] == {"before": "含实施", "after": None}
    assert "sku" not in entries[0]["changes"]


async def test_take_a_product_off_sale(client: httpx.AsyncClient, tenant: Tenant) -> None:
    product = await _product(client, tenant, "OLD")
    response = await client.patch(f"{PRODUCTS}/{product['id']}", headers=tenant.headers, json={"active": False})
    assert response.status_code == 200, response.text
    assert response.json()["active"] is False
    assert [p["sku"] for p in (await _list(client, tenant, active="false"))["items"]] == ["OLD"]
    assert (await _list(client, tenant, active="true"))["items"] == []


async def test_stale_if_match_is_412_and_writes_nothing(
    client: httpx.AsyncClient, tenant: Tenant, db: AsyncSession
) -> None:
    product = await _product(client, tenant, "ERP-STD")
    url = f"{PRODUCTS}/{product['id']}"
    stale = {**tenant.headers, "If-Match": 'W/"1"'}
    assert (await client.patch(url, headers=stale, json={"name": "新名称"})).status_code == 200
    assert_problem(await client.patch(url, headers=stale, json={"price": "0"}), 412)
    row = await _product_row(db, product["id"])
    assert (row.name, row.price, row.version) == ("新名称", Decimal("1.00"), 2)
    assert (await client.patch(url, headers={**tenant.headers, "If-Match": 'W/"2"'}, json={"price": "2"})).json()[
        "version"
    ] == 3
    assert len(await _audit(client, tenant, product["id"])) == 3


async def test_list_in_sku_order_with_keyset_pages(client: httpx.AsyncClient, tenant: Tenant) -> None:
    # SKUs whose order is the same under any collation the database may use.
    skus = ["C-300", "A-100", "B-200", "A-050", "D-400", "B-201"]
    for sku in skus:
        await _product(client, tenant, sku)
    listed = await _list(client, tenant)
    assert listed["next_cursor"] is None
    ordered = [p["sku"] for p in listed["items"]]
    assert ordered == ["A-050", "A-100", "B-200", "B-201", "C-300", "D-400"]

    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = await _list(client, tenant, **params)
        assert len(page["items"]) <= 2
        seen += [p["sku"] for p in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == ordered and pages == 3
    # A product added while paging shows up once, in its place.
    first = await _list(client, tenant, limit=3)
    await _product(client, tenant, "Z-999")
    rest = await _list(client, tenant, limit=10, cursor=first["next_cursor"])
    assert [p["sku"] for p in first["items"] + rest["items"]] == [*ordered, "Z-999"]
    assert_problem(await client.get(PRODUCTS, headers=tenant.headers, params={"cursor": "garbage"}), 422)
    assert error_locs(await client.get(PRODUCTS, headers=tenant.headers, params={"limit": 0})) == [["query", "limit"]]


async def test_search_by_part_of_sku_or_name(client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant) -> None:
    await _product(client, tenant, "ERP-STD", name="ERP 标准版")
    await _product(client, tenant, "ERP-PRO", name="ERP 专业版")
    await _product(client, tenant, "CRM-STD", name="客户管理 标准版")
    await _product(client, tenant, "SVC_100%", name="实施服务")
    await _product(client, other_tenant, "ERP-OTHER", name="ERP 标准版")

    async def found(q: str, **params: Any) -> list[str]:
        return [p["sku"] for p in (await _list(client, tenant, q=q, **params))["items"]]

    assert await found("erp") == ["ERP-PRO", "ERP-STD"]
    assert await found("标准版") == ["CRM-STD", "ERP-STD"]
    assert await found("-std") == ["CRM-STD", "ERP-STD"]
    assert await found("专业") == ["ERP-PRO"]
    assert await found("100%") == ["SVC_100%"]
    assert await found("%") == ["SVC_100%"]
    assert await found("_") == ["SVC_100%"]
    assert await found("nothing") == []
    other = await add_user(client, tenant, "viewer")
    assert [
        p["sku"] for p in (await client.get(PRODUCTS, headers=other.headers, params={"q": "erp"})).json()["items"]
    ] == [
        "ERP-PRO",
        "ERP-STD",
    ]
    erp_pro = (await _list(client, tenant, q="ERP-PRO"))["items"][0]
    await client.patch(f"{PRODUCTS}/{erp_pro['id']}", headers=tenant.headers, json={"active": False})
    assert await found("erp", active="true") == ["ERP-STD"]
    assert await found("erp", active="false") == ["ERP-PRO"]
    assert error_locs(await client.get(PRODUCTS, headers=tenant.headers, params={"active": "maybe"})) == [
        ["query", "active"]
    ]


async def test_idempotent_replay_creates_one_product(
    client: httpx.AsyncClient, tenant: Tenant, db: AsyncSession
) -> None:
    headers = {**tenant.headers, "Idempotency-Key": str(uuid.uuid4())}
    body = {"sku": "ERP-STD", "name": "ERP 标准版", "price": "12800"}
    first = await client.post(PRODUCTS, headers=headers, json=body)
    second = await client.post(PRODUCTS, headers=headers, json=body)
    assert first.status_code == second.status_code == 201, first.text
    assert second.json() == first.json() and second.headers["idempotent-replayed"] == "true"
    assert second.headers["etag"] == first.headers["etag"]
    assert second.headers["location"] == first.headers["location"]
    assert await _product_count(db, tenant.organization_id) == 1
    other_body = await client.post(PRODUCTS, headers=headers, json={**body, "price": "1"})
    assert error_locs(other_body) == [["header", "Idempotency-Key"]]
    assert await _product_count(db, tenant.organization_id) == 1


@pytest.mark.parametrize("role", ["sales", "viewer", "support"])
async def test_roles_without_products_write_only_read(
    client: httpx.AsyncClient, tenant: Tenant, db: AsyncSession, role: str
) -> None:
    user = await add_user(client, tenant, role)
    product = await _product(client, tenant, "ERP-STD")
    url = f"{PRODUCTS}/{product['id']}"
    assert [p["id"] for p in (await client.get(PRODUCTS, headers=user.headers)).json()["items"]] == [product["id"]]
    assert (await client.get(url, headers=user.headers)).json() == product
    assert_problem(await client.post(PRODUCTS, headers=user.headers, json={"sku": "B", "name": "x", "price": "1"}), 403)
    assert_problem(await client.patch(url, headers=user.headers, json={"price": "0"}), 403)
    assert await _product_count(db, tenant.organization_id) == 1
    assert (await _product_row(db, product["id"])).version == 1


async def test_managers_and_admins_keep_the_catalogue(client: httpx.AsyncClient, tenant: Tenant) -> None:
    for role in ("manager", "admin"):
        user = await add_user(client, tenant, role)
        product = await _product(client, user, f"{role}-1")
        patched = await client.patch(f"{PRODUCTS}/{product['id']}", headers=user.headers, json={"price": "5"})
        assert patched.status_code == 200 and patched.json()["price"] == "5.00"
        assert {e["actor_id"] for e in await _audit(client, tenant, product["id"])} == {user.user_id}


async def test_api_keys_need_the_products_scopes(client: httpx.AsyncClient, tenant: Tenant) -> None:
    reader = await add_api_key(client, tenant, ["products:read"])
    writer = await add_api_key(client, tenant, ["products:write"])
    unrelated = await add_api_key(client, tenant, ["pipelines:read"])
    product = await _product(client, tenant, "ERP-STD")
    assert (await client.get(f"{PRODUCTS}/{product['id']}", headers=reader)).status_code == 200
    assert_problem(await client.get(PRODUCTS, headers=unrelated), 403)
    assert_problem(await client.post(PRODUCTS, headers=reader, json={"sku": "B", "name": "x", "price": "1"}), 403)
    assert_problem(await client.patch(f"{PRODUCTS}/{product['id']}", headers=reader, json={"price": "2"}), 403)
    made = await create(client, PRODUCTS, writer, sku="B", name="x", price="1")
    assert (await _audit(client, tenant, made["id"]))[0]["actor_type"] == "api_key"
    assert_problem(await client.get(PRODUCTS), 401)
    assert_problem(await client.post(PRODUCTS, json={"sku": "C", "name": "x", "price": "1"}), 401)


async def test_another_organisations_products_are_not_found(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant, db: AsyncSession
) -> None:
    theirs = await _product(client, other_tenant, "SECRET", name="机密产品")
    url = f"{PRODUCTS}/{theirs['id']}"
    assert_problem(await client.get(url, headers=tenant.headers), 404)
    assert_problem(await client.patch(url, headers=tenant.headers, json={"price": "0"}), 404)
    assert_problem(await client.patch(url, headers={**tenant.headers, "If-Match": 'W/"1"'}, json={"price": "0"}), 404)
    assert_problem(await client.get(f"{PRODUCTS}/{uuid.uuid4()}", headers=tenant.headers), 404)
    assert error_locs(await client.get(f"{PRODUCTS}/not-a-uuid", headers=tenant.headers)) == [["path", "product_id"]]
    assert (await _list(client, tenant))["items"] == []
    assert (await _list(client, tenant, q="SECRET"))["items"] == []
    row = await _product_row(db, theirs["id"])
    assert (row.price, row.version) == (Decimal("1.00"), 1)
    audit_rows = await db.scalar(
        select(func.count()).where(
            AuditEntry.entity_id == uuid.UUID(theirs["id"]),
            AuditEntry.organization_id == uuid.UUID(tenant.organization_id),
        )
    )
    assert audit_rows == 0
