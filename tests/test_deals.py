"""Deals: create, line items and contacts, moves with stage history, closing, the board, search,
upserts, archive, concurrency control, roles, visibility and tenancy."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from tests.helpers import Tenant, add_api_key, add_user, assert_problem, create, error_locs

DEALS = "/api/v1/deals"
PIPELINES = "/api/v1/pipelines"
PRODUCTS = "/api/v1/products"


async def _pipeline(client: httpx.AsyncClient, tenant: Tenant) -> dict[str, Any]:
    """The organisation's default pipeline."""
    response = await client.get(PIPELINES, headers=tenant.headers)
    assert response.status_code == 200, response.text
    default: dict[str, Any] = response.json()["items"][0]
    assert default["is_default"]
    return default


def _stage(pipeline: dict[str, Any], name: str) -> str:
    return next(stage["id"] for stage in pipeline["stages"] if stage["name"] == name)


async def _deal(client: httpx.AsyncClient, tenant: Tenant, **body: Any) -> dict[str, Any]:
    return await create(client, DEALS, tenant.headers, **({"name": "ERP 升级"} | body))


async def _move(
    client: httpx.AsyncClient, tenant: Tenant, deal: dict[str, Any], stage_id: str, **body: Any
) -> httpx.Response:
    return await client.post(f"{DEALS}/{deal['id']}/move", headers=tenant.headers, json={"stage_id": stage_id} | body)


async def _visits(client: httpx.AsyncClient, tenant: Tenant, deal_id: str) -> list[dict[str, Any]]:
    response = await client.get(f"{DEALS}/{deal_id}/stage-history", headers=tenant.headers)
    assert response.status_code == 200, response.text
    return response.json()["items"]  # type: ignore[no-any-return]


async def _event_types(client: httpx.AsyncClient, tenant: Tenant, deal_id: str) -> list[str]:
    response = await client.get("/api/v1/events", headers=tenant.headers, params={"type": "deal.*", "limit": 500})
    assert response.status_code == 200, response.text
    return [event["type"] for event in response.json()["items"] if event["entity_id"] == deal_id]


async def test_a_new_organisation_has_the_briefs_sales_pipeline(client: httpx.AsyncClient, tenant: Tenant) -> None:
    pipeline = await _pipeline(client, tenant)
    stages = [(s["name"], s["probability"], s["kind"], s["position"]) for s in pipeline["stages"]]
    assert stages == [
        ("潜在客户", 10, "open", 0),
        ("需求分析", 20, "open", 1),
        ("方案制定", 40, "open", 2),
        ("商务谈判", 70, "open", 3),
        ("成交", 100, "won", 4),
        ("输单", 0, "lost", 5),
    ]


async def test_create_fills_in_pipeline_stage_probability_currency_and_owner(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    pipeline = await _pipeline(client, tenant)
    response = await client.post(
        DEALS,
        headers=tenant.headers,
        json={
            "name": " 天元贸易 ERP 升级 ",
            "amount": 150000.5,
            "expected_close_date": "2026-12-31",
            "tags": ["华东", "华东"],
            "external_id": "S001",
            "source": "referral",
        },
    )
    assert response.status_code == 201, response.text
    deal = response.json()
    assert response.headers["location"] == f"{DEALS}/{deal['id']}"
    assert response.headers["etag"] == 'W/"1"'
    assert deal["name"] == "天元贸易 ERP 升级"
    assert deal["pipeline_id"] == pipeline["id"]
    assert deal["stage_id"] == _stage(pipeline, "潜在客户")
    assert deal["status"] == "open" and deal["closed_at"] is None
    assert deal["probability"] == 10 and deal["probability_manual"] is False
    assert deal["amount"] == "150000.50" and deal["currency"] == "CNY"
    assert deal["owner_id"] == tenant.user_id
    assert deal["tags"] == ["华东"]
    visits = await _visits(client, tenant, deal["id"])
    assert [(v["stage_id"], v["exited_at"]) for v in visits] == [(deal["stage_id"], None)]
    assert await _event_types(client, tenant, deal["id"]) == ["deal.created"]
    fetched = await client.get(f"{DEALS}/{deal['id']}", headers=tenant.headers)
    assert fetched.json() == deal


async def test_create_refuses_bad_input(client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant) -> None:
    theirs = await _pipeline(client, other_tenant)
    their_company = await create(client, "/api/v1/companies", other_tenant.headers, name="别家")
    response = await client.post(
        DEALS,
        headers=tenant.headers,
        json={"name": "", "amount": "-1", "currency": "XYZ", "probability": 101, "stage_id": "nope"},
    )
    assert_problem(response, 422)
    assert sorted(error_locs(response)) == sorted(
        [["body", "name"], ["body", "amount"], ["body", "currency"], ["body", "probability"], ["body", "stage_id"]]
    )
    response = await client.post(DEALS, headers=tenant.headers, json={"name": "x", "amount": "1.001"})
    assert error_locs(response) == [["body", "amount"]]
    response = await client.post(
        DEALS, headers=tenant.headers, json={"name": "x", "stage_id": theirs["stages"][0]["id"]}
    )
    assert_problem(response, 422)
    assert error_locs(response) == [["body", "stage_id"]]
    response = await client.post(DEALS, headers=tenant.headers, json={"name": "x", "pipeline_id": theirs["id"]})
    assert error_locs(response) == [["body", "pipeline_id"]]
    response = await client.post(DEALS, headers=tenant.headers, json={"name": "x", "company_id": their_company["id"]})
    assert error_locs(response) == [["body", "company_id"]]
    response = await client.post(DEALS, headers=tenant.headers, json={"name": "x", "lost_reason": "价格"})
    assert error_locs(response) == [["body", "lost_reason"]]
    response = await client.post(DEALS, headers=tenant.headers, json={"name": "x", "surprise": 1})
    assert error_locs(response) == [["body", "surprise"]]


async def test_stage_must_belong_to_the_pipeline_named(client: httpx.AsyncClient, tenant: Tenant) -> None:
    default = await _pipeline(client, tenant)
    other = await create(client, PIPELINES, tenant.headers, name="大客户")
    response = await client.post(
        DEALS,
        headers=tenant.headers,
        json={"name": "x", "pipeline_id": other["id"], "stage_id": default["stages"][1]["id"]},
    )
    assert error_locs(response) == [["body", "stage_id"]]
    deal = await _deal(client, tenant, pipeline_id=other["id"])
    assert deal["pipeline_id"] == other["id"] and deal["stage_id"] == other["stages"][0]["id"]


async def test_line_items_are_priced_by_the_server(client: httpx.AsyncClient, tenant: Tenant) -> None:
    product = await create(client, PRODUCTS, tenant.headers, sku="ERP-STD", name="ERP 标准版", price="12800.00")
    deal = await _deal(
        client,
        tenant,
        line_items=[
            {"product_id": product["id"], "quantity": 3, "discount_percent": "12.5"},
            {"name": "实施服务", "quantity": "1.5", "unit_price": "3333.33"},
        ],
    )
    lines = deal["line_items"]
    assert [(line["name"], line["unit_price"], line["amount"]) for line in lines] == [
        ("ERP 标准版", "12800.00", "33600.00"),
        # 1.5 × 3333.33 = 4999.995, rounded half up
        ("实施服务", "3333.33", "5000.00"),
    ]
    assert [line["position"] for line in lines] == [0, 1]
    assert deal["amount"] == "38600.00"

    url = f"{DEALS}/{deal['id']}"
    response = await client.patch(url, headers=tenant.headers, json={"amount": "1.00"})
    assert error_locs(response) == [["body", "amount"]]
    response = await client.post(
        DEALS,
        headers=tenant.headers,
        json={"name": "x", "amount": "1", "line_items": [{"name": "a", "quantity": 1, "unit_price": 1}]},
    )
    assert_problem(response, 422)
    response = await client.patch(url, headers=tenant.headers, json={"line_items": [{"name": "a", "quantity": 1}]})
    assert_problem(response, 422)
    response = await client.patch(
        url, headers=tenant.headers, json={"line_items": [{"product_id": str(uuid.uuid4()), "quantity": 1}]}
    )
    assert error_locs(response) == [["body", "line_items", 0, "product_id"]]
    response = await client.patch(
        url, headers=tenant.headers, json={"line_items": [{"name": "a", "quantity": 0, "unit_price": 1}]}
    )
    assert_problem(response, 422)

    response = await client.patch(
        url, headers=tenant.headers, json={"line_items": [{"name": "年费", "quantity": 2, "unit_price": "100.10"}]}
    )
    assert response.status_code == 200, response.text
    assert response.json()["amount"] == "200.20" and response.json()["version"] == 2
    assert [line["name"] for line in response.json()["line_items"]] == ["年费"]


async def test_inactive_or_foreign_currency_products_need_care(client: httpx.AsyncClient, tenant: Tenant) -> None:
    retired = await create(client, PRODUCTS, tenant.headers, sku="OLD", name="旧版", price="1.00", active=False)
    euro = await create(client, PRODUCTS, tenant.headers, sku="EU", name="Euro", price="10.00", currency="EUR")
    response = await client.post(
        DEALS, headers=tenant.headers, json={"name": "x", "line_items": [{"product_id": retired["id"], "quantity": 1}]}
    )
    assert error_locs(response) == [["body", "line_items", 0, "product_id"]]
    response = await client.post(
        DEALS, headers=tenant.headers, json={"name": "x", "line_items": [{"product_id": euro["id"], "quantity": 1}]}
    )
    assert error_locs(response) == [["body", "line_items", 0, "unit_price"]]
    deal = await _deal(client, tenant, currency="eur", line_items=[{"product_id": euro["id"], "quantity": 2}])
    assert deal["currency"] == "EUR" and deal["amount"] == "20.00"


async def test_contacts_take_part_with_roles(client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant) -> None:
    buyer = await create(client, "/api/v1/contacts", tenant.headers, first_name="伟", last_name="张")
    user = await create(client, "/api/v1/contacts", tenant.headers, first_name="娜", last_name="李")
    theirs = await create(client, "/api/v1/contacts", other_tenant.headers, first_name="外")
    deal = await _deal(client, tenant, contacts=[{"contact_id": buyer["id"], "role": "决策人"}])
    assert deal["contacts"] == [{"contact_id": buyer["id"], "role": "决策人"}]
    url = f"{DEALS}/{deal['id']}"
    response = await client.patch(
        url,
        headers=tenant.headers,
        json={"contacts": [{"contact_id": buyer["id"]}, {"contact_id": user["id"], "role": "使用者"}]},
    )
    assert response.status_code == 200, response.text
    assert {(c["contact_id"], c["role"]) for c in response.json()["contacts"]} == {
        (buyer["id"], None),
        (user["id"], "使用者"),
    }
    for contacts, loc in (
        ([{"contact_id": theirs["id"]}], ["body", "contacts", 0, "contact_id"]),
        ([{"contact_id": buyer["id"]}, {"contact_id": buyer["id"]}], ["body", "contacts", 1, "contact_id"]),
    ):
        response = await client.patch(url, headers=tenant.headers, json={"contacts": contacts})
        assert_problem(response, 422)
        assert error_locs(response) == [loc]
    history = (await client.get(f"{url}/history", headers=tenant.headers)).json()["items"]
    assert "contacts" in history[0]["changes"]


async def test_merging_contacts_moves_their_deal_parts(client: httpx.AsyncClient, tenant: Tenant) -> None:
    survivor = await create(client, "/api/v1/contacts", tenant.headers, first_name="伟", email="wei@example.com")
    duplicate = await create(client, "/api/v1/contacts", tenant.headers, first_name="伟", email="wei@example.org")
    other = await create(client, "/api/v1/contacts", tenant.headers, first_name="娜")
    both = await _deal(
        client,
        tenant,
        contacts=[{"contact_id": survivor["id"], "role": "决策人"}, {"contact_id": duplicate["id"], "role": "使用者"}],
    )
    only_duplicate = await _deal(
        client, tenant, contacts=[{"contact_id": duplicate["id"]}, {"contact_id": other["id"]}]
    )
    response = await client.post(
        f"/api/v1/contacts/{survivor['id']}/merge", headers=tenant.headers, json={"merge_ids": [duplicate["id"]]}
    )
    assert response.status_code == 200, response.text
    first = (await client.get(f"{DEALS}/{both['id']}", headers=tenant.headers)).json()
    assert first["contacts"] == [{"contact_id": survivor["id"], "role": "决策人"}]
    second = (await client.get(f"{DEALS}/{only_duplicate['id']}", headers=tenant.headers)).json()
    assert {c["contact_id"] for c in second["contacts"]} == {survivor["id"], other["id"]}


async def test_moves_keep_a_stage_history_and_close_the_deal(client: httpx.AsyncClient, tenant: Tenant) -> None:
    pipeline = await _pipeline(client, tenant)
    deal = await _deal(client, tenant, amount="1000")
    response = await _move(client, tenant, deal, _stage(pipeline, "需求分析"))
    assert response.status_code == 200, response.text
    moved = response.json()
    assert moved["stage_id"] == _stage(pipeline, "需求分析") and moved["probability"] == 20
    assert moved["version"] == 2 and moved["stage_entered_at"] > deal["stage_entered_at"]

    response = await client.patch(
        f"{DEALS}/{deal['id']}", headers=tenant.headers, json={"stage_id": _stage(pipeline, "成交")}
    )
    won = response.json()
    assert won["status"] == "won" and won["probability"] == 100 and won["closed_at"] is not None

    visits = await _visits(client, tenant, deal["id"])
    assert [v["stage_id"] for v in visits] == [_stage(pipeline, n) for n in ("潜在客户", "需求分析", "成交")]
    assert all(v["exited_at"] is not None for v in visits[:2]) and visits[2]["exited_at"] is None
    # No gap and no overlap: each visit ends when the next begins.
    assert visits[0]["exited_at"] == visits[1]["entered_at"]
    assert visits[1]["exited_at"] == visits[2]["entered_at"]
    assert all(v["days"] >= 0 for v in visits)

    types = await _event_types(client, tenant, deal["id"])
    assert types == [
        "deal.created",
        "deal.updated",
        "deal.stage_changed",
        "deal.updated",
        "deal.stage_changed",
        "deal.won",
    ]

    response = await _move(client, tenant, deal, _stage(pipeline, "输单"), lost_reason="预算取消")
    lost = response.json()
    assert lost["status"] == "lost" and lost["lost_reason"] == "预算取消" and lost["probability"] == 0
    assert lost["closed_at"] > won["closed_at"]
    response = await _move(client, tenant, deal, _stage(pipeline, "商务谈判"))
    reopened = response.json()
    assert reopened["status"] == "open" and reopened["closed_at"] is None and reopened["lost_reason"] is None
    assert (await _event_types(client, tenant, deal["id"]))[-1] == "deal.stage_changed"


async def test_moving_to_the_same_stage_changes_nothing(client: httpx.AsyncClient, tenant: Tenant) -> None:
    deal = await _deal(client, tenant)
    response = await _move(client, tenant, deal, deal["stage_id"])
    assert response.status_code == 200 and response.json()["version"] == 1
    assert len(await _visits(client, tenant, deal["id"])) == 1


async def test_bad_moves_are_refused(client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant) -> None:
    pipeline = await _pipeline(client, tenant)
    theirs = await _pipeline(client, other_tenant)
    deal = await _deal(client, tenant)
    response = await _move(client, tenant, deal, theirs["stages"][1]["id"])
    assert error_locs(response) == [["body", "stage_id"]]
    response = await _move(client, tenant, deal, _stage(pipeline, "需求分析"), lost_reason="太贵")
    assert error_locs(response) == [["body", "lost_reason"]]
    response = await client.post(f"{DEALS}/{deal['id']}/move", headers=tenant.headers, json={})
    assert error_locs(response) == [["body", "stage_id"]]
    response = await client.patch(f"{DEALS}/{deal['id']}", headers=tenant.headers, json={"stage_id": None})
    assert error_locs(response) == [["body", "stage_id"]]
    assert len(await _visits(client, tenant, deal["id"])) == 1


async def test_a_deal_moves_to_another_pipeline(client: httpx.AsyncClient, tenant: Tenant) -> None:
    other = await create(client, PIPELINES, tenant.headers, name="续约")
    deal = await _deal(client, tenant)
    response = await _move(client, tenant, deal, other["stages"][1]["id"])
    assert response.json()["pipeline_id"] == other["id"]
    visits = await _visits(client, tenant, deal["id"])
    assert [v["pipeline_id"] for v in visits] == [deal["pipeline_id"], other["id"]]


async def test_a_probability_set_by_hand_stays_until_cleared(client: httpx.AsyncClient, tenant: Tenant) -> None:
    pipeline = await _pipeline(client, tenant)
    deal = await _deal(client, tenant, probability=35)
    assert deal["probability"] == 35 and deal["probability_manual"] is True
    moved = (await _move(client, tenant, deal, _stage(pipeline, "方案制定"))).json()
    assert moved["probability"] == 35
    url = f"{DEALS}/{deal['id']}"
    cleared = (await client.patch(url, headers=tenant.headers, json={"probability": None})).json()
    assert cleared["probability"] == 40 and cleared["probability_manual"] is False
    stage_url = f"{PIPELINES}/{pipeline['id']}/stages/{_stage(pipeline, '方案制定')}"
    response = await client.patch(stage_url, headers=tenant.headers, json={"probability": 45})
    assert response.status_code == 200, response.text
    followed = (await client.get(url, headers=tenant.headers)).json()
    assert followed["probability"] == 45 and followed["version"] == cleared["version"] + 1
    assert (await _event_types(client, tenant, deal["id"]))[-1] == "deal.updated"
    history = (await client.get(f"{url}/history", headers=tenant.headers)).json()["items"]
    assert history[0]["changes"]["probability"] == {"before": 40, "after": 45}


async def test_board_counts_sums_and_weights_per_stage_and_currency(client: httpx.AsyncClient, tenant: Tenant) -> None:
    pipeline = await _pipeline(client, tenant)
    first, second = _stage(pipeline, "潜在客户"), _stage(pipeline, "商务谈判")
    for amount in ("100.00", "200.50", "300.00"):
        await _deal(client, tenant, amount=amount)
    await _deal(client, tenant, amount="50", currency="USD")
    await _deal(client, tenant)  # no amount: counted, not summed
    await _deal(client, tenant, amount="1000", stage_id=second, probability=50)
    await _deal(client, tenant, amount="999", stage_id=second)
    archived = await _deal(client, tenant, amount="7777", stage_id=second)
    await client.delete(f"{DEALS}/{archived['id']}", headers=tenant.headers)

    response = await client.get(f"{PIPELINES}/{pipeline['id']}/board", headers=tenant.headers, params={"limit": 2})
    assert response.status_code == 200, response.text
    columns = {column["stage"]["id"]: column for column in response.json()["columns"]}
    assert [column["stage"]["name"] for column in response.json()["columns"]] == [s["name"] for s in pipeline["stages"]]
    assert columns[first]["count"] == 5
    assert columns[first]["totals"] == [
        {"currency": "CNY", "amount": "600.50", "weighted_amount": "60.05"},
        {"currency": "USD", "amount": "50.00", "weighted_amount": "5.00"},
    ]
    assert columns[second]["count"] == 2
    # 1000 × 50% + 999 × 70%
    assert columns[second]["totals"] == [{"currency": "CNY", "amount": "1999.00", "weighted_amount": "1199.30"}]
    assert columns[_stage(pipeline, "成交")]["count"] == 0 and columns[_stage(pipeline, "成交")]["totals"] == []

    shown = [deal["id"] for deal in columns[first]["deals"]]
    assert len(shown) == 2 and columns[first]["next_cursor"]
    rest = await client.get(
        DEALS, headers=tenant.headers, params={"stage_id": first, "cursor": columns[first]["next_cursor"]}
    )
    assert len(shown) + len(rest.json()["items"]) == 5
    assert not set(shown) & {deal["id"] for deal in rest.json()["items"]}


async def test_board_shows_a_sales_rep_only_what_they_may_see(client: httpx.AsyncClient, tenant: Tenant) -> None:
    response = await client.patch("/api/v1/organization", headers=tenant.headers, json={"record_visibility": "own"})
    assert response.status_code == 200, response.text
    rep = await add_user(client, tenant, "sales")
    await _deal(client, tenant, amount="100")
    mine = await _deal(client, rep, amount="10")
    pipeline = await _pipeline(client, tenant)
    board = (await client.get(f"{PIPELINES}/{pipeline['id']}/board", headers=rep.headers)).json()
    first = board["columns"][0]
    assert first["count"] == 1 and [d["id"] for d in first["deals"]] == [mine["id"]]
    assert first["totals"][0]["amount"] == "10.00"
    hidden = (await client.get(DEALS, headers=tenant.headers)).json()["items"][0]
    assert hidden["id"] != mine["id"]
    assert_problem(await client.get(f"{DEALS}/{hidden['id']}", headers=rep.headers), 404)


async def test_lists_filter_search_and_sort(client: httpx.AsyncClient, tenant: Tenant) -> None:
    pipeline = await _pipeline(client, tenant)
    small = await _deal(client, tenant, name="小单 云服务", amount="10", tags=["续费"])
    big = await _deal(client, tenant, name="大单 ERP", amount="90000", stage_id=_stage(pipeline, "成交"))
    response = await client.get(DEALS, headers=tenant.headers, params={"status": "won"})
    assert [d["id"] for d in response.json()["items"]] == [big["id"]]
    response = await client.get(DEALS, headers=tenant.headers, params={"q": "云服务"})
    assert [d["id"] for d in response.json()["items"]] == [small["id"]]
    response = await client.get(DEALS, headers=tenant.headers, params={"tag": "续费"})
    assert [d["id"] for d in response.json()["items"]] == [small["id"]]
    response = await client.get(DEALS, headers=tenant.headers, params={"sort": "-amount"})
    assert [d["id"] for d in response.json()["items"]] == [big["id"], small["id"]]
    response = await client.post(
        f"{DEALS}/search",
        headers=tenant.headers,
        json={
            "filter": {
                "and": [
                    {"field": "amount", "op": "gte", "value": 100},
                    {"field": "probability", "op": "eq", "value": 100},
                ]
            }
        },
    )
    assert response.status_code == 200, response.text
    assert [d["id"] for d in response.json()["items"]] == [big["id"]]
    response = await client.post(
        f"{DEALS}/search", headers=tenant.headers, json={"filter": {"field": "nope", "op": "eq", "value": 1}}
    )
    assert_problem(response, 422)


async def test_custom_fields_for_deals(client: httpx.AsyncClient, tenant: Tenant) -> None:
    response = await client.post(
        "/api/v1/custom-fields",
        headers=tenant.headers,
        json={"entity": "deal", "key": "bid_no", "label": "招标编号", "type": "text"},
    )
    assert response.status_code == 201, response.text
    deal = await _deal(client, tenant, custom_fields={"bid_no": "ZB-2026-7"})
    assert deal["custom_fields"] == {"bid_no": "ZB-2026-7"}
    response = await client.post(DEALS, headers=tenant.headers, json={"name": "x", "custom_fields": {"unknown": 1}})
    assert_problem(response, 422)
    response = await client.post(
        f"{DEALS}/search",
        headers=tenant.headers,
        json={"filter": {"field": "custom_fields.bid_no", "op": "eq", "value": "ZB-2026-7"}},
    )
    assert [d["id"] for d in response.json()["items"]] == [deal["id"]]


async def test_upsert_by_external_id(client: httpx.AsyncClient, tenant: Tenant) -> None:
    url = f"{DEALS}/external/S001"
    response = await client.put(url, headers=tenant.headers, json={"name": "ERP", "amount": "10"})
    assert response.status_code == 201, response.text
    response = await client.put(url, headers=tenant.headers, json={"amount": "20"})
    assert response.status_code == 200 and response.json()["amount"] == "20.00"
    assert response.json()["external_id"] == "S001" and response.json()["name"] == "ERP"
    response = await client.post(DEALS, headers=tenant.headers, json={"name": "x", "external_id": "S001"})
    assert_problem(response, 409)
    response = await client.put(f"{DEALS}/external/S002", headers=tenant.headers, json={"amount": "20"})
    assert error_locs(response) == [["body", "name"]]


async def test_archive_restore_and_closed_deals(client: httpx.AsyncClient, tenant: Tenant) -> None:
    pipeline = await _pipeline(client, tenant)
    deal = await _deal(client, tenant)
    url = f"{DEALS}/{deal['id']}"
    archived = await client.delete(url, headers=tenant.headers)
    assert archived.status_code == 200 and archived.json()["archived_at"] is not None
    assert_problem(await _move(client, tenant, deal, _stage(pipeline, "成交")), 409)
    assert (await client.get(DEALS, headers=tenant.headers)).json()["items"] == []
    assert [
        d["id"] for d in (await client.get(DEALS, headers=tenant.headers, params={"archived": True})).json()["items"]
    ] == [deal["id"]]
    restored = await client.post(f"{url}/restore", headers=tenant.headers)
    assert restored.status_code == 200 and restored.json()["archived_at"] is None
    assert (await _event_types(client, tenant, deal["id"])) == ["deal.created", "deal.archived", "deal.restored"]


async def test_stale_if_match_is_412_and_writes_nothing(client: httpx.AsyncClient, tenant: Tenant) -> None:
    pipeline = await _pipeline(client, tenant)
    deal = await _deal(client, tenant)
    url = f"{DEALS}/{deal['id']}"
    await client.patch(url, headers=tenant.headers, json={"amount": "5"})
    stale = tenant.headers | {"If-Match": 'W/"1"'}
    assert_problem(await client.patch(url, headers=stale, json={"amount": "6"}), 412)
    assert_problem(
        await _move(client, Tenant(**{**tenant.__dict__, "headers": stale}), deal, _stage(pipeline, "成交")), 412
    )
    assert_problem(await client.delete(url, headers=stale), 412)
    current = (await client.get(url, headers=tenant.headers)).json()
    assert current["amount"] == "5.00" and current["status"] == "open" and current["version"] == 2
    fresh = tenant.headers | {"If-Match": 'W/"2"'}
    assert (await client.patch(url, headers=fresh, json={"amount": "6"})).status_code == 200


async def test_idempotent_create(client: httpx.AsyncClient, tenant: Tenant) -> None:
    headers = tenant.headers | {"Idempotency-Key": "deal-1"}
    first = await client.post(DEALS, headers=headers, json={"name": "一次"})
    again = await client.post(DEALS, headers=headers, json={"name": "一次"})
    assert first.status_code == again.status_code == 201
    assert first.json()["id"] == again.json()["id"]
    assert len((await client.get(DEALS, headers=tenant.headers)).json()["items"]) == 1
    assert_problem(await client.post(DEALS, headers=headers, json={"name": "两次"}), 422)


@pytest.mark.parametrize("role", ["viewer", "support", "marketing"])
async def test_roles_that_only_read_deals(client: httpx.AsyncClient, tenant: Tenant, role: str) -> None:
    deal = await _deal(client, tenant)
    reader = await add_user(client, tenant, role)
    assert (await client.get(f"{DEALS}/{deal['id']}", headers=reader.headers)).status_code == 200
    assert_problem(await client.post(DEALS, headers=reader.headers, json={"name": "x"}), 403)
    assert_problem(await client.patch(f"{DEALS}/{deal['id']}", headers=reader.headers, json={"name": "x"}), 403)
    assert_problem(await _move(client, reader, deal, deal["stage_id"]), 403)


async def test_sales_reps_and_api_keys_write_deals(client: httpx.AsyncClient, tenant: Tenant) -> None:
    rep = await add_user(client, tenant, "sales")
    assert (await _deal(client, rep))["owner_id"] == rep.user_id
    key = await add_api_key(client, tenant, ["deals:read", "deals:write"])
    response = await client.post(DEALS, headers=key, json={"name": "来自 ERP"})
    assert response.status_code == 201 and response.json()["owner_id"] is None
    reader = await add_api_key(client, tenant, ["deals:read"])
    assert_problem(await client.post(DEALS, headers=reader, json={"name": "x"}), 403)


async def test_another_organisations_deal_is_404_everywhere(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    theirs = await _deal(client, other_tenant)
    url = f"{DEALS}/{theirs['id']}"
    stage_id = (await _pipeline(client, tenant))["stages"][1]["id"]
    their_pipeline = await _pipeline(client, other_tenant)
    for response in (
        await client.get(url, headers=tenant.headers),
        await client.patch(url, headers=tenant.headers, json={"name": "x"}),
        await client.post(f"{url}/move", headers=tenant.headers, json={"stage_id": stage_id}),
        await client.delete(url, headers=tenant.headers),
        await client.post(f"{url}/restore", headers=tenant.headers),
        await client.get(f"{url}/history", headers=tenant.headers),
        await client.get(f"{url}/stage-history", headers=tenant.headers),
        await client.get(f"{PIPELINES}/{their_pipeline['id']}/board", headers=tenant.headers),
    ):
        assert_problem(response, 404)
    assert (await client.get(url, headers=other_tenant.headers)).json()["version"] == 1


async def test_the_organisations_currency_is_the_default(client: httpx.AsyncClient, tenant: Tenant) -> None:
    response = await client.patch("/api/v1/organization", headers=tenant.headers, json={"currency": "usd"})
    assert response.status_code == 200 and response.json()["currency"] == "USD"
    assert (await _deal(client, tenant))["currency"] == "USD"
    response = await client.patch("/api/v1/organization", headers=tenant.headers, json={"currency": "DOLLAR"})
    assert error_locs(response) == [["body", "currency"]]
    response = await client.patch("/api/v1/organization", headers=tenant.headers, json={"currency": None})
    assert error_locs(response) == [["body", "currency"]]


async def test_a_writes_reply_matches_the_next_read(client: httpx.AsyncClient, tenant: Tenant) -> None:
    first = await create(client, "/api/v1/contacts", tenant.headers, first_name="甲")
    second = await create(client, "/api/v1/contacts", tenant.headers, first_name="乙")
    deal = await _deal(
        client,
        tenant,
        contacts=[{"contact_id": second["id"]}, {"contact_id": first["id"]}],
        line_items=[{"name": "服务", "quantity": "3", "unit_price": "10", "discount_percent": "12.5"}],
    )
    assert deal["line_items"][0]["quantity"] == "3.0000" and deal["line_items"][0]["discount_percent"] == "12.50"
    assert (await client.get(f"{DEALS}/{deal['id']}", headers=tenant.headers)).json() == deal


async def test_batch_creates_and_upserts_deals(client: httpx.AsyncClient, tenant: Tenant) -> None:
    pipeline = await _pipeline(client, tenant)
    records = [
        {"name": "甲", "external_id": "S001", "amount": "100"},
        {"name": "", "external_id": "S002"},
        {"name": "丙", "external_id": "S003", "stage_id": _stage(pipeline, "成交")},
    ]
    response = await client.post(f"{DEALS}/batch", headers=tenant.headers, json={"mode": "create", "records": records})
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [r["status"] for r in results] == ["created", "failed", "created"]
    assert results[1]["problem"]["errors"][0]["loc"] == ["body", "records", 1, "name"]
    won = (await client.get(f"{DEALS}/{results[2]['id']}", headers=tenant.headers)).json()
    assert won["status"] == "won" and len(await _visits(client, tenant, won["id"])) == 1

    upserts = [
        {"external_id": "S001", "amount": "150"},
        {"external_id": "S003", "name": "丙"},
        {"external_id": "S004", "name": "丁"},
        {"name": "no key"},
    ]
    response = await client.post(f"{DEALS}/batch", headers=tenant.headers, json={"mode": "upsert", "records": upserts})
    assert [r["status"] for r in response.json()["results"]] == ["updated", "unchanged", "created", "failed"]
    assert (await client.get(f"{DEALS}/{results[0]['id']}", headers=tenant.headers)).json()["amount"] == "150.00"

    before = len((await client.get(DEALS, headers=tenant.headers, params={"limit": 500})).json()["items"])
    response = await client.post(
        f"{DEALS}/batch",
        headers=tenant.headers,
        params={"atomic": True},
        json={"mode": "create", "records": [{"name": "戊"}, {"name": "己", "amount": "-1"}]},
    )
    assert_problem(response, 422)
    assert error_locs(response) == [["body", "records", 1, "amount"]]
    after = len((await client.get(DEALS, headers=tenant.headers, params={"limit": 500})).json()["items"])
    assert after == before, "atomic: nothing was written"


async def test_a_patch_that_changes_nothing_writes_nothing(client: httpx.AsyncClient, tenant: Tenant) -> None:
    deal = await _deal(client, tenant, name="原样")
    url = f"{DEALS}/{deal['id']}"
    response = await client.patch(url, headers=tenant.headers, json={"name": "原样", "amount": None})
    assert response.status_code == 200 and response.json()["version"] == 1
    assert (await client.get(url, headers=tenant.headers)).json()["version"] == 1
