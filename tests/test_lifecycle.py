"""The lifecycle: stages as the brief has them, changes by hand and by rules (score thresholds,
first, repeat and loyal orders, inactivity), the history, and the rules' validation."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from app.models.base import utcnow
from app.models.contact import Contact
from app.services import lifecycle, scoring
from tests.helpers import Tenant, assert_problem, create, error_locs

CONTACTS = "/api/v1/contacts"


async def _contact(client: httpx.AsyncClient, tenant: Tenant, **body: Any) -> dict[str, Any]:
    return await create(client, CONTACTS, tenant.headers, **({"first_name": "伟"} | body))


async def _history(client: httpx.AsyncClient, tenant: Tenant, contact_id: str) -> list[tuple[Any, Any, str]]:
    response = await client.get(f"{CONTACTS}/{contact_id}/lifecycle-history", headers=tenant.headers)
    assert response.status_code == 200, response.text
    return [(c["from_stage"], c["to_stage"], c["reason"]) for c in response.json()["items"]]


async def _stage(client: httpx.AsyncClient, tenant: Tenant, contact_id: str) -> str:
    return str((await client.get(f"{CONTACTS}/{contact_id}", headers=tenant.headers)).json()["lifecycle_stage"])


async def _rules(client: httpx.AsyncClient, tenant: Tenant, **rules: Any) -> None:
    response = await client.patch("/api/v1/organization", headers=tenant.headers, json={"lifecycle_rules": rules})
    assert response.status_code == 200, response.text


async def _paid_order(client: httpx.AsyncClient, tenant: Tenant, contact_id: str, price: str = "100.00") -> None:
    order = await create(
        client,
        "/api/v1/orders",
        tenant.headers,
        contact_id=contact_id,
        line_items=[{"name": "年费", "quantity": 1, "unit_price": price}],
    )
    for status in ("confirmed", "fulfilled", "paid"):
        response = await client.post(
            f"/api/v1/orders/{order['id']}/transition", headers=tenant.headers, json={"to": status}
        )
        assert response.status_code == 200, response.text


async def test_stages_follow_the_brief_and_changes_by_hand_are_kept(client: httpx.AsyncClient, tenant: Tenant) -> None:
    contact = await _contact(client, tenant, lifecycle_stage="subscriber")
    url = f"{CONTACTS}/{contact['id']}"
    for stage in ("lead", "opportunity", "repeat_customer"):
        response = await client.patch(url, headers=tenant.headers, json={"lifecycle_stage": stage})
        assert response.status_code == 200, response.text
    assert await _history(client, tenant, contact["id"]) == [
        ("opportunity", "repeat_customer", "manual"),
        ("lead", "opportunity", "manual"),
        ("subscriber", "lead", "manual"),
    ]
    for old in ("marketing_qualified_lead", "evangelist", "other"):
        assert error_locs(await client.patch(url, headers=tenant.headers, json={"lifecycle_stage": old})) == [
            ["body", "lifecycle_stage"]
        ]
    events = (
        await client.get("/api/v1/events", headers=tenant.headers, params={"type": "contact.lifecycle_stage_changed"})
    ).json()["items"]
    assert len([e for e in events if e["entity_id"] == contact["id"]]) == 3


async def test_scores_qualify_leads_when_the_organisation_says_so(
    client: httpx.AsyncClient, tenant: Tenant, app: Any
) -> None:
    await create(
        client,
        "/api/v1/scoring-rules",
        tenant.headers,
        name="上海",
        kind="fit",
        condition={"field": "city", "op": "eq", "value": "上海"},
        points=60,
    )
    off = await _contact(client, tenant, city="上海")
    waiting = await _contact(client, tenant, city="上海")
    assert off["lifecycle_stage"] == "lead", "score thresholds are off by default"
    await _rules(client, tenant, mql_score=30, sql_score=70)
    hot = await _contact(client, tenant, city="上海")
    assert hot["lifecycle_stage"] == "marketing_qualified" and hot["version"] == 2
    assert await _history(client, tenant, hot["id"]) == [("lead", "marketing_qualified", "score")]
    customer = await _contact(client, tenant, city="上海", lifecycle_stage="customer")
    assert customer["lifecycle_stage"] == "customer", "rules only move leads forward"

    await create(
        client,
        "/api/v1/scoring-rules",
        tenant.headers,
        name="经理",
        kind="fit",
        condition={"field": "title", "op": "contains", "value": "经理"},
        points=20,
    )
    await client.patch(f"{CONTACTS}/{off['id']}", headers=tenant.headers, json={"title": "经理"})
    assert await _stage(client, tenant, off["id"]) == "sales_qualified", "80 points, written now"
    organization_id = uuid.UUID(tenant.organization_id)
    assert await scoring.rescore_organization(app.state.session_factory, organization_id)
    assert await lifecycle.qualify_by_score(app.state.session_factory, organization_id) == 1
    assert await _stage(client, tenant, waiting["id"]) == "marketing_qualified", "qualified by the rescore pass"
    assert await _stage(client, tenant, hot["id"]) == "marketing_qualified", "60 < 70 even after the rescore"
    leads = (await client.get("/api/v1/leads", headers=tenant.headers)).json()["items"]
    assert {c["id"] for c in leads} >= {hot["id"], off["id"]}, "qualified leads stay in the queue"


async def test_orders_make_customers_repeat_customers_and_loyal_ones(client: httpx.AsyncClient, tenant: Tenant) -> None:
    await _rules(client, tenant, loyal_orders=3)
    contact = await _contact(client, tenant)
    await _paid_order(client, tenant, contact["id"])
    assert await _stage(client, tenant, contact["id"]) == "customer"
    await _paid_order(client, tenant, contact["id"])
    assert await _stage(client, tenant, contact["id"]) == "repeat_customer"
    await _paid_order(client, tenant, contact["id"])
    assert await _stage(client, tenant, contact["id"]) == "loyal"
    assert [reason for *_, reason in await _history(client, tenant, contact["id"])] == [
        "loyal",
        "repeat_order",
        "first_order",
    ]


async def test_spend_makes_a_customer_loyal(client: httpx.AsyncClient, tenant: Tenant) -> None:
    await _rules(client, tenant, loyal_orders=None, loyal_spend="1000")
    contact = await _contact(client, tenant)
    await _paid_order(client, tenant, contact["id"], price="999.99")
    assert await _stage(client, tenant, contact["id"]) == "customer"
    await _paid_order(client, tenant, contact["id"], price="0.01")
    assert await _stage(client, tenant, contact["id"]) == "loyal"


async def test_inactive_customers_churn_and_come_back(
    client: httpx.AsyncClient, tenant: Tenant, app: Any, db: AsyncSession
) -> None:
    await _rules(client, tenant, churn_days=30)
    quiet = await _contact(client, tenant, lifecycle_stage="customer")
    active = await _contact(client, tenant, lifecycle_stage="customer")
    lead = await _contact(client, tenant)
    await client.post(f"{CONTACTS}/{active['id']}/activities", headers=tenant.headers, json={"signal": "email_opened"})
    long_ago = utcnow() - timedelta(days=60)
    await db.execute(
        update(Contact)
        .where(Contact.id.in_([uuid.UUID(c["id"]) for c in (quiet, active, lead)]))
        .values(created_at=long_ago)
    )
    await db.commit()
    assert await lifecycle.churn_inactive(app.state.session_factory) >= 1
    assert await _stage(client, tenant, quiet["id"]) == "churned"
    assert await _stage(client, tenant, active["id"]) == "customer"
    assert await _stage(client, tenant, lead["id"]) == "lead"
    before = await _history(client, tenant, quiet["id"])
    await lifecycle.churn_inactive(app.state.session_factory)
    assert await _history(client, tenant, quiet["id"]) == before, "a second run moves nobody again"
    await _paid_order(client, tenant, quiet["id"])
    assert await _stage(client, tenant, quiet["id"]) == "customer", "a churned customer who buys comes back"


async def test_bad_rules_and_other_tenants(client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant) -> None:
    for rules, loc in (
        ({"mql_score": 50, "sql_score": 40}, ["body", "lifecycle_rules"]),
        ({"churn_days": 0}, ["body", "lifecycle_rules", "churn_days"]),
        ({"loyal_orders": 1}, ["body", "lifecycle_rules", "loyal_orders"]),
        ({"loyal_spend": "-5"}, ["body", "lifecycle_rules", "loyal_spend"]),
        ({"surprise": 1}, ["body", "lifecycle_rules", "surprise"]),
    ):
        response = await client.patch("/api/v1/organization", headers=tenant.headers, json={"lifecycle_rules": rules})
        assert_problem(response, 422)
        assert error_locs(response)[0][: len(loc)] == loc
    organization = (await client.get("/api/v1/organization", headers=tenant.headers)).json()
    assert organization["lifecycle_rules"] == {
        "mql_score": None,
        "sql_score": None,
        "loyal_orders": 5,
        "loyal_spend": None,
        "churn_days": 180,
    }
    theirs = await _contact(client, other_tenant)
    response = await client.get(f"{CONTACTS}/{theirs['id']}/lifecycle-history", headers=tenant.headers)
    assert_problem(response, 404)
