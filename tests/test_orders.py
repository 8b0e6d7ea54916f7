"""Orders: server pricing with Decimal rounding, the status transition table, editing rules,
orders from won deals, owners and record visibility, the owners' backfill, concurrency control,
roles, idempotency and tenancy."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.enums import OrderStatus
from app.services.orders import TRANSITIONS
from tests.helpers import Tenant, add_api_key, add_user, assert_problem, create, error_locs, migration

ORDERS = "/api/v1/orders"
DEALS = "/api/v1/deals"
# The moves that take a new draft to each status.
PATHS = {
    OrderStatus.draft: [],
    OrderStatus.confirmed: ["confirmed"],
    OrderStatus.fulfilled: ["confirmed", "fulfilled"],
    OrderStatus.paid: ["confirmed", "fulfilled", "paid"],
    OrderStatus.cancelled: ["cancelled"],
}
LINE = {"name": "年费", "quantity": 1, "unit_price": "100.00"}


async def _company(client: httpx.AsyncClient, tenant: Tenant, name: str = "天元贸易") -> dict[str, Any]:
    return await create(client, "/api/v1/companies", tenant.headers, name=name)


async def _order(client: httpx.AsyncClient, tenant: Tenant, **body: Any) -> dict[str, Any]:
    if "company_id" not in body and "contact_id" not in body:
        body["company_id"] = (await _company(client, tenant))["id"]
    return await create(client, ORDERS, tenant.headers, **({"line_items": [LINE]} | body))


async def _transition(client: httpx.AsyncClient, tenant: Tenant, order_id: str, to: str, **headers: str) -> Any:
    return await client.post(f"{ORDERS}/{order_id}/transition", headers=tenant.headers | headers, json={"to": to})


async def _event_types(client: httpx.AsyncClient, tenant: Tenant, entity_id: str) -> list[str]:
    response = await client.get("/api/v1/events", headers=tenant.headers, params={"type": "order.*", "limit": 500})
    assert response.status_code == 200, response.text
    return [event["type"] for event in response.json()["items"] if event["entity_id"] == entity_id]


async def _audit(client: httpx.AsyncClient, tenant: Tenant, entity_id: str) -> list[dict[str, Any]]:
    response = await client.get("/api/v1/audit-log", headers=tenant.headers, params={"entity_id": entity_id})
    assert response.status_code == 200, response.text
    return response.json()["items"]  # type: ignore[no-any-return]


async def test_lines_and_totals_are_priced_by_the_server(client: httpx.AsyncClient, tenant: Tenant) -> None:
    product = await create(client, "/api/v1/products", tenant.headers, sku="ERP-STD", name="ERP 标准版", price="12800")
    company = await _company(client, tenant)
    response = await client.post(
        ORDERS,
        headers=tenant.headers,
        json={
            "company_id": company["id"],
            "line_items": [
                {"product_id": product["id"], "quantity": 3, "discount_percent": "12.5", "tax_percent": 13},
                # 1.5 × 3333.33 = 4999.995 → 5000.00
                {"name": "实施服务", "quantity": "1.5", "unit_price": "3333.33", "tax_percent": 6},
                # 0.25 × 50% = 0.125 → 0.13 half up (0.12 half even); tax 0.013 → 0.01
                {"name": "配件", "quantity": 1, "unit_price": "0.25", "discount_percent": 50, "tax_percent": 10},
                # tax 0.005 → 0.01 half up
                {"name": "贴纸", "quantity": 1, "unit_price": "0.05", "tax_percent": 10},
            ],
        },
    )
    assert response.status_code == 201, response.text
    order = response.json()
    assert response.headers["location"] == f"{ORDERS}/{order['id']}"
    assert response.headers["etag"] == 'W/"1"'
    assert [(line["name"], line["net_amount"], line["tax_amount"]) for line in order["line_items"]] == [
        ("ERP 标准版", "33600.00", "4368.00"),
        ("实施服务", "5000.00", "300.00"),
        ("配件", "0.13", "0.01"),
        ("贴纸", "0.05", "0.01"),
    ]
    assert order["line_items"][0]["unit_price"] == "12800.00"
    assert (order["subtotal"], order["tax_total"], order["total"]) == ("38600.18", "4668.02", "43268.20")
    assert order["status"] == "draft" and order["currency"] == "CNY" and order["company_id"] == company["id"]
    assert (await client.get(f"{ORDERS}/{order['id']}", headers=tenant.headers)).json() == order
    assert await _event_types(client, tenant, order["id"]) == ["order.created"]
    [created] = await _audit(client, tenant, order["id"])
    assert created["action"] == "create" and created["changes"]["total"]["after"] == "43268.20"


async def test_client_sent_totals_are_refused(client: httpx.AsyncClient, tenant: Tenant) -> None:
    company = await _company(client, tenant)
    response = await client.post(
        ORDERS, headers=tenant.headers, json={"company_id": company["id"], "line_items": [LINE], "total": "1.00"}
    )
    assert error_locs(response) == [["body", "total"]]
    response = await client.post(
        ORDERS, headers=tenant.headers, json={"company_id": company["id"], "line_items": [LINE | {"net_amount": "1"}]}
    )
    assert error_locs(response) == [["body", "line_items", 0, "net_amount"]]


async def test_create_refuses_bad_input(client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant) -> None:
    theirs = await _company(client, other_tenant)
    their_contact = await create(client, "/api/v1/contacts", other_tenant.headers, first_name="外")
    their_deal = await create(client, DEALS, other_tenant.headers, name="别家")
    their_product = await create(client, "/api/v1/products", other_tenant.headers, sku="X", name="X", price="1")
    mine = (await _company(client, tenant))["id"]

    response = await client.post(ORDERS, headers=tenant.headers, json={"line_items": [LINE]})
    assert_problem(response, 422)
    assert error_locs(response) == [["body"]]
    for body, loc in (
        ({"company_id": theirs["id"]}, ["body", "company_id"]),
        ({"contact_id": their_contact["id"]}, ["body", "contact_id"]),
        ({"company_id": mine, "deal_id": their_deal["id"]}, ["body", "deal_id"]),
        (
            {"company_id": mine, "line_items": [{"product_id": their_product["id"], "quantity": 1}]},
            ["body", "line_items", 0, "product_id"],
        ),
        ({"company_id": mine, "line_items": [LINE | {"tax_percent": 101}]}, ["body", "line_items", 0, "tax_percent"]),
        ({"company_id": mine, "line_items": [LINE | {"quantity": 0}]}, ["body", "line_items", 0, "quantity"]),
        ({"company_id": mine, "currency": "XYZ"}, ["body", "currency"]),
        ({"company_id": "nope"}, ["body", "company_id"]),
    ):
        response = await client.post(ORDERS, headers=tenant.headers, json=body)
        assert_problem(response, 422)
        assert error_locs(response) == [loc], body
    assert (await client.get(ORDERS, headers=tenant.headers)).json()["items"] == []


async def test_the_transition_path_is_audited_and_announced(client: httpx.AsyncClient, tenant: Tenant) -> None:
    order = await _order(client, tenant)
    for version, status in enumerate(("confirmed", "fulfilled", "paid"), start=2):
        response = await _transition(client, tenant, order["id"], status)
        assert response.status_code == 200, response.text
        assert response.json()["status"] == status and response.json()["version"] == version
        assert response.json()[f"{status}_at"] is not None
    assert await _event_types(client, tenant, order["id"]) == [
        "order.created",
        "order.status_changed",
        "order.confirmed",
        "order.status_changed",
        "order.fulfilled",
        "order.status_changed",
        "order.paid",
    ]
    entries = await _audit(client, tenant, order["id"])
    assert [entry["changes"]["status"]["after"] for entry in entries if entry["action"] == "update"] == [
        "paid",
        "fulfilled",
        "confirmed",
    ]


@pytest.mark.parametrize("status", list(OrderStatus))
async def test_every_transition_outside_the_table_is_409(
    client: httpx.AsyncClient, tenant: Tenant, status: OrderStatus
) -> None:
    order = await _order(client, tenant)
    for step in PATHS[status]:
        assert (await _transition(client, tenant, order["id"], step)).status_code == 200
    for target in OrderStatus:
        if target in TRANSITIONS[status]:
            continue
        assert_problem(await _transition(client, tenant, order["id"], target.value), 409)
    current = (await client.get(f"{ORDERS}/{order['id']}", headers=tenant.headers)).json()
    assert current["status"] == status.value and current["version"] == 1 + len(PATHS[status])


async def test_a_fulfilled_order_cannot_be_cancelled_and_an_empty_one_not_confirmed(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    empty = await _order(client, tenant, line_items=[])
    assert (empty["subtotal"], empty["total"]) == ("0.00", "0.00")
    assert_problem(await _transition(client, tenant, empty["id"], "confirmed"), 409)
    order = await _order(client, tenant)
    await _transition(client, tenant, order["id"], "confirmed")
    await _transition(client, tenant, order["id"], "fulfilled")
    body = assert_problem(await _transition(client, tenant, order["id"], "cancelled"), 409)
    assert "fulfilled" in body["detail"]
    response = await _transition(client, tenant, order["id"], "shipped")
    assert error_locs(response) == [["body", "to"]]


async def test_lines_change_only_in_draft(client: httpx.AsyncClient, tenant: Tenant) -> None:
    order = await _order(client, tenant)
    url = f"{ORDERS}/{order['id']}"
    response = await client.patch(
        url,
        headers=tenant.headers,
        json={"line_items": [{"name": "年费", "quantity": 2, "unit_price": "100.10", "tax_percent": "13"}]},
    )
    assert response.status_code == 200, response.text
    changed = response.json()
    assert (changed["subtotal"], changed["tax_total"], changed["total"]) == ("200.20", "26.03", "226.23")
    assert changed["version"] == 2
    assert (await client.patch(url, headers=tenant.headers, json={"notes": "加急"})).json()["version"] == 3

    await _transition(client, tenant, order["id"], "confirmed")
    for body in ({"line_items": [LINE]}, {"currency": "USD"}, {"company_id": None}):
        assert_problem(await client.patch(url, headers=tenant.headers, json=body), 409)
    response = await client.patch(url, headers=tenant.headers, json={"notes": "已确认"})
    assert response.status_code == 200 and response.json()["notes"] == "已确认"
    assert response.json()["total"] == "226.23"
    assert await _event_types(client, tenant, order["id"]) == [
        "order.created",
        "order.updated",
        "order.updated",
        "order.status_changed",
        "order.confirmed",
        "order.updated",
    ]


async def test_an_order_keeps_a_customer(client: httpx.AsyncClient, tenant: Tenant) -> None:
    contact = await create(client, "/api/v1/contacts", tenant.headers, first_name="伟", last_name="张")
    order = await _order(client, tenant, contact_id=contact["id"])
    url = f"{ORDERS}/{order['id']}"
    response = await client.patch(url, headers=tenant.headers, json={"contact_id": None, "company_id": None})
    assert error_locs(response) == [["body"]]
    response = await client.patch(url, headers=tenant.headers, json={"company_id": None})
    assert response.status_code == 200 and response.json()["contact_id"] == contact["id"]


async def _won_deal(client: httpx.AsyncClient, tenant: Tenant, **body: Any) -> dict[str, Any]:
    pipeline = (await client.get("/api/v1/pipelines", headers=tenant.headers)).json()["items"][0]
    won = next(stage["id"] for stage in pipeline["stages"] if stage["kind"] == "won")
    return await create(client, DEALS, tenant.headers, **({"name": "ERP 升级", "stage_id": won} | body))


async def test_an_order_from_a_won_deal(client: httpx.AsyncClient, tenant: Tenant) -> None:
    company = await _company(client, tenant)
    buyer = await create(client, "/api/v1/contacts", tenant.headers, first_name="伟")
    user = await create(client, "/api/v1/contacts", tenant.headers, first_name="娜")
    deal = await _won_deal(
        client,
        tenant,
        company_id=company["id"],
        currency="USD",
        contacts=[{"contact_id": user["id"]}, {"contact_id": buyer["id"], "role": "决策人"}],
        line_items=[
            {"name": "许可", "quantity": 3, "unit_price": "12800.00", "discount_percent": "12.5"},
            {"name": "实施服务", "quantity": "1.5", "unit_price": "3333.33"},
        ],
    )
    response = await client.post(f"{DEALS}/{deal['id']}/order", headers=tenant.headers)
    assert response.status_code == 201, response.text
    order = response.json()
    assert order["deal_id"] == deal["id"] and order["company_id"] == company["id"]
    listed_first = (await client.get(f"{DEALS}/{deal['id']}", headers=tenant.headers)).json()["contacts"][0]
    assert order["contact_id"] == listed_first["contact_id"]
    assert order["currency"] == "USD" and order["status"] == "draft"
    assert [(line["name"], line["net_amount"], line["tax_amount"]) for line in order["line_items"]] == [
        ("许可", "33600.00", "0.00"),
        ("实施服务", "5000.00", "0.00"),
    ]
    assert order["subtotal"] == order["total"] == deal["amount"] == "38600.00"
    listed = (await client.get(ORDERS, headers=tenant.headers, params={"deal_id": deal["id"]})).json()["items"]
    assert [o["id"] for o in listed] == [order["id"]]


async def test_only_a_won_deal_with_a_customer_becomes_an_order(client: httpx.AsyncClient, tenant: Tenant) -> None:
    company = await _company(client, tenant)
    open_deal = await create(client, DEALS, tenant.headers, name="进行中", company_id=company["id"])
    assert_problem(await client.post(f"{DEALS}/{open_deal['id']}/order", headers=tenant.headers), 409)
    nobody = await _won_deal(client, tenant)
    assert_problem(await client.post(f"{DEALS}/{nobody['id']}/order", headers=tenant.headers), 409)
    assert_problem(await client.post(f"{DEALS}/{uuid.uuid4()}/order", headers=tenant.headers), 404)
    assert (await client.get(ORDERS, headers=tenant.headers)).json()["items"] == []


async def test_lists_filter_by_status_and_customer(client: httpx.AsyncClient, tenant: Tenant) -> None:
    first = await _order(client, tenant)
    second = await _order(client, tenant)
    await _transition(client, tenant, second["id"], "cancelled")
    page = (await client.get(ORDERS, headers=tenant.headers)).json()
    assert [o["id"] for o in page["items"]] == [second["id"], first["id"]]
    cancelled = (await client.get(ORDERS, headers=tenant.headers, params={"status": "cancelled"})).json()
    assert [o["id"] for o in cancelled["items"]] == [second["id"]]
    by_company = (await client.get(ORDERS, headers=tenant.headers, params={"company_id": first["company_id"]})).json()
    assert [o["id"] for o in by_company["items"]] == [first["id"]]
    one = (await client.get(ORDERS, headers=tenant.headers, params={"limit": 1})).json()
    rest = (await client.get(ORDERS, headers=tenant.headers, params={"cursor": one["next_cursor"]})).json()
    assert [o["id"] for o in one["items"] + rest["items"]] == [second["id"], first["id"]]


async def test_the_owner_is_the_deals_else_the_creator(client: httpx.AsyncClient, tenant: Tenant) -> None:
    rep = await add_user(client, tenant, "sales")
    company = await _company(client, tenant)
    assert (await _order(client, tenant, company_id=company["id"]))["owner_id"] == tenant.user_id
    assert (await _order(client, rep, company_id=company["id"]))["owner_id"] == rep.user_id
    reps_deal = await create(client, DEALS, tenant.headers, name="ERP", owner_id=rep.user_id)
    from_deal = await _order(client, tenant, company_id=company["id"], deal_id=reps_deal["id"])
    assert from_deal["owner_id"] == rep.user_id
    unowned_deal = await create(client, DEALS, tenant.headers, name="ERP", owner_id=None)
    from_unowned = await _order(client, tenant, company_id=company["id"], deal_id=unowned_deal["id"])
    assert from_unowned["owner_id"] == tenant.user_id
    won = await _won_deal(client, tenant, company_id=company["id"], owner_id=rep.user_id)
    response = await client.post(f"{DEALS}/{won['id']}/order", headers=tenant.headers)
    assert response.status_code == 201 and response.json()["owner_id"] == rep.user_id
    won_unowned = await _won_deal(client, tenant, company_id=company["id"], owner_id=None)
    response = await client.post(f"{DEALS}/{won_unowned['id']}/order", headers=tenant.headers)
    assert response.status_code == 201 and response.json()["owner_id"] == tenant.user_id
    key = await add_api_key(client, tenant, ["orders:write"])
    by_key = await client.post(ORDERS, headers=key, json={"company_id": company["id"], "line_items": [LINE]})
    assert by_key.status_code == 201 and by_key.json()["owner_id"] is None
    by_key = await client.post(
        ORDERS, headers=key, json={"company_id": company["id"], "deal_id": reps_deal["id"], "line_items": [LINE]}
    )
    assert by_key.status_code == 201 and by_key.json()["owner_id"] == rep.user_id


async def test_an_owner_sent_must_be_an_active_user_of_the_organisation(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    rep = await add_user(client, tenant, "sales")
    leaver = await add_user(client, tenant, "sales")
    company = await _company(client, tenant)
    reps_deal = await create(client, DEALS, tenant.headers, name="ERP", owner_id=rep.user_id)
    chosen = await _order(client, tenant, company_id=company["id"], deal_id=reps_deal["id"], owner_id=leaver.user_id)
    assert chosen["owner_id"] == leaver.user_id
    unowned = await _order(client, tenant, company_id=company["id"], deal_id=reps_deal["id"], owner_id=None)
    assert unowned["owner_id"] is None
    response = await client.post(f"/api/v1/users/{leaver.user_id}/deactivate", headers=tenant.headers)
    assert response.status_code == 200, response.text
    url = f"{ORDERS}/{chosen['id']}"
    for owner_id in (leaver.user_id, other_tenant.user_id, str(uuid.uuid4())):
        body = {"company_id": company["id"], "line_items": [LINE], "owner_id": owner_id}
        response = await client.post(ORDERS, headers=tenant.headers, json=body)
        assert_problem(response, 422)
        assert error_locs(response) == [["body", "owner_id"]]
        response = await client.patch(f"{ORDERS}/{unowned['id']}", headers=tenant.headers, json={"owner_id": owner_id})
        assert error_locs(response) == [["body", "owner_id"]]
    # A deactivated owner stays until someone else is named.
    response = await client.patch(url, headers=tenant.headers, json={"owner_id": leaver.user_id, "notes": "交接中"})
    assert response.status_code == 200 and response.json()["owner_id"] == leaver.user_id


async def test_the_owner_changes_in_any_status_audited_and_announced(client: httpx.AsyncClient, tenant: Tenant) -> None:
    rep = await add_user(client, tenant, "sales")
    order = await _order(client, tenant)
    for step in PATHS[OrderStatus.paid]:
        assert (await _transition(client, tenant, order["id"], step)).status_code == 200
    url = f"{ORDERS}/{order['id']}"
    response = await client.patch(url, headers=tenant.headers, json={"owner_id": rep.user_id})
    assert response.status_code == 200, response.text
    assert response.json()["owner_id"] == rep.user_id and response.json()["version"] == 5
    change = {"owner_id": {"before": tenant.user_id, "after": rep.user_id}}
    latest = (await _audit(client, tenant, order["id"]))[0]
    assert latest["action"] == "update" and latest["changes"] == change
    events = (await client.get("/api/v1/events", headers=tenant.headers, params={"type": "order.updated"})).json()
    [updated] = [event for event in events["items"] if event["entity_id"] == order["id"]]
    assert updated["changes"] == change and updated["data"]["owner_id"] == rep.user_id
    response = await client.patch(url, headers=tenant.headers, json={"owner_id": None})
    assert response.status_code == 200 and response.json()["owner_id"] is None
    assert (await client.get(ORDERS, headers=tenant.headers, params={"owner_id": rep.user_id})).json()["items"] == []


@pytest.mark.parametrize("setting", ["own", "team"])
async def test_record_visibility_for_restricted_roles(client: httpx.AsyncClient, tenant: Tenant, setting: str) -> None:
    sales = await add_user(client, tenant, "sales")
    teammate = await add_user(client, tenant, "sales")
    stranger = await add_user(client, tenant, "sales")
    manager = await add_user(client, tenant, "manager")
    await create(client, "/api/v1/teams", tenant.headers, name="华东", member_ids=[sales.user_id, teammate.user_id])
    company = await _company(client, tenant)
    owners = {"mine": sales.user_id, "mates": teammate.user_id, "theirs": stranger.user_id, "unowned": None}
    orders = {
        name: await _order(client, tenant, company_id=company["id"], owner_id=owner_id, notes=name)
        for name, owner_id in owners.items()
    }
    strangers_deal = await _won_deal(client, tenant, company_id=company["id"], owner_id=stranger.user_id)
    patched = await client.patch("/api/v1/organization", headers=tenant.headers, json={"record_visibility": setting})
    assert patched.status_code == 200

    async def visible(user: Tenant, **params: str) -> set[str]:
        page = (await client.get(ORDERS, headers=user.headers, params=params)).json()
        return {order["notes"] for order in page["items"]}

    expected = {"mine"} if setting == "own" else {"mine", "mates"}
    assert await visible(sales) == expected
    assert await visible(sales, owner_id=sales.user_id) == {"mine"}
    assert await visible(sales, owner_id=stranger.user_id) == set()
    assert await visible(manager) == set(owners)
    assert await visible(manager, owner_id=stranger.user_id) == {"theirs"}
    mine = orders["mine"]["id"]
    assert (await client.get(f"{ORDERS}/{mine}", headers=sales.headers)).status_code == 200
    assert (await _transition(client, sales, mine, "confirmed")).status_code == 200
    hidden = ["theirs", "unowned"] + (["mates"] if setting == "own" else [])
    for name in hidden:
        order_id = orders[name]["id"]
        assert_problem(await client.get(f"{ORDERS}/{order_id}", headers=sales.headers), 404)
        assert_problem(await client.patch(f"{ORDERS}/{order_id}", headers=sales.headers, json={"notes": "x"}), 404)
        assert_problem(await _transition(client, sales, order_id, "confirmed"), 404)
    assert_problem(await client.post(f"{DEALS}/{strangers_deal['id']}/order", headers=sales.headers), 404)
    # Handing an order over hides it from the rep who gave it away.
    handed = await client.patch(f"{ORDERS}/{mine}", headers=sales.headers, json={"owner_id": stranger.user_id})
    assert handed.status_code == 200, handed.text
    assert_problem(await client.get(f"{ORDERS}/{mine}", headers=sales.headers), 404)
    strangers = (await client.get(ORDERS, headers=tenant.headers, params={"owner_id": stranger.user_id})).json()
    assert {order["notes"]: order["version"] for order in strangers["items"]} == {"mine": 3, "theirs": 1}


async def test_the_migrations_backfill_gives_the_owner_a_create_gives(
    client: httpx.AsyncClient, tenant: Tenant, db: AsyncSession
) -> None:
    rep = await add_user(client, tenant, "sales")
    company = await _company(client, tenant)
    reps_deal = await create(client, DEALS, tenant.headers, name="ERP", owner_id=rep.user_id)
    unowned_deal = await create(client, DEALS, tenant.headers, name="ERP", owner_id=None)
    key = await add_api_key(client, tenant, ["orders:write"])
    made = {
        "rep's, no deal": await _order(client, rep, company_id=company["id"]),
        "owner's, rep's deal": await _order(client, tenant, company_id=company["id"], deal_id=reps_deal["id"]),
        "owner's, unowned deal": await _order(client, tenant, company_id=company["id"], deal_id=unowned_deal["id"]),
        "key's, no deal": await create(client, ORDERS, key, company_id=company["id"]),
        "key's, rep's deal": await create(client, ORDERS, key, company_id=company["id"], deal_id=reps_deal["id"]),
    }
    backfill = migration("2026_11_30_0022_order_contract_owners.py")._BACKFILL.format(table="orders", entity="order")
    organization = {"organization_id": tenant.organization_id}
    await db.execute(text("UPDATE orders SET owner_id = NULL WHERE organization_id = :organization_id"), organization)
    await db.execute(text(backfill))
    rows = await db.execute(
        text("SELECT id, owner_id FROM orders WHERE organization_id = :organization_id"), organization
    )
    backfilled = {str(row.id): str(row.owner_id) if row.owner_id else None for row in rows}
    await db.rollback()
    assert {name: backfilled[order["id"]] for name, order in made.items()} == {
        "rep's, no deal": rep.user_id,
        "owner's, rep's deal": rep.user_id,
        "owner's, unowned deal": tenant.user_id,
        "key's, no deal": None,
        "key's, rep's deal": rep.user_id,
    }
    assert all(backfilled[order["id"]] == order["owner_id"] for order in made.values())


async def test_stale_if_match_is_412_and_writes_nothing(client: httpx.AsyncClient, tenant: Tenant) -> None:
    order = await _order(client, tenant)
    url = f"{ORDERS}/{order['id']}"
    await client.patch(url, headers=tenant.headers, json={"notes": "一"})
    stale = {"If-Match": 'W/"1"'}
    assert_problem(await client.patch(url, headers=tenant.headers | stale, json={"notes": "二"}), 412)
    assert_problem(await _transition(client, tenant, order["id"], "confirmed", **stale), 412)
    current = (await client.get(url, headers=tenant.headers)).json()
    assert current["notes"] == "一" and current["status"] == "draft" and current["version"] == 2
    assert (await _transition(client, tenant, order["id"], "confirmed", **{"If-Match": 'W/"2"'})).status_code == 200


async def test_idempotent_create(client: httpx.AsyncClient, tenant: Tenant) -> None:
    company = await _company(client, tenant)
    headers = tenant.headers | {"Idempotency-Key": "order-1"}
    body = {"company_id": company["id"], "line_items": [LINE]}
    first = await client.post(ORDERS, headers=headers, json=body)
    again = await client.post(ORDERS, headers=headers, json=body)
    assert first.status_code == again.status_code == 201
    assert again.headers["idempotent-replayed"] == "true" and first.json() == again.json()
    assert len((await client.get(ORDERS, headers=tenant.headers)).json()["items"]) == 1
    assert_problem(await client.post(ORDERS, headers=headers, json=body | {"notes": "另一单"}), 422)


async def test_roles_and_api_keys(client: httpx.AsyncClient, tenant: Tenant) -> None:
    order = await _order(client, tenant)
    viewer = await add_user(client, tenant, "viewer")
    assert (await client.get(f"{ORDERS}/{order['id']}", headers=viewer.headers)).status_code == 200
    assert_problem(await client.post(ORDERS, headers=viewer.headers, json={"company_id": order["company_id"]}), 403)
    assert_problem(await client.patch(f"{ORDERS}/{order['id']}", headers=viewer.headers, json={"notes": "x"}), 403)
    assert_problem(await _transition(client, viewer, order["id"], "confirmed"), 403)
    rep = await add_user(client, tenant, "sales")
    assert (await _transition(client, rep, order["id"], "confirmed")).status_code == 200
    key = await add_api_key(client, tenant, ["orders:read", "orders:write"])
    response = await client.post(ORDERS, headers=key, json={"company_id": order["company_id"], "line_items": [LINE]})
    assert response.status_code == 201, response.text
    reader = await add_api_key(client, tenant, ["orders:read"])
    assert (await client.get(ORDERS, headers=reader)).status_code == 200
    assert_problem(await client.post(ORDERS, headers=reader, json={"company_id": order["company_id"]}), 403)


async def test_another_organisations_order_is_404_everywhere(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    theirs = await _order(client, other_tenant)
    their_deal = await _won_deal(client, other_tenant, company_id=theirs["company_id"])
    url = f"{ORDERS}/{theirs['id']}"
    for response in (
        await client.get(url, headers=tenant.headers),
        await client.patch(url, headers=tenant.headers, json={"notes": "x"}),
        await _transition(client, tenant, theirs["id"], "confirmed"),
        await client.post(f"{DEALS}/{their_deal['id']}/order", headers=tenant.headers),
    ):
        assert_problem(response, 404)
    assert (await client.get(ORDERS, headers=tenant.headers)).json()["items"] == []
    assert (await client.get(url, headers=other_tenant.headers)).json()["version"] == 1
