"""Assignment rules: strategies (fixed user, round-robin, least-loaded, territory), conditions,
out-of-office users, batches, on-demand assignment, exactly fair turns under parallel creates,
the follow-up task and event, and the rules' validation, roles and tenancy."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import date, timedelta
from typing import Any

import httpx
import pytest

from tests.helpers import Tenant, add_user, assert_problem, create, error_locs

RULES = "/api/v1/assignment-rules"
CONTACTS = "/api/v1/contacts"


async def _team(client: httpx.AsyncClient, tenant: Tenant, size: int) -> tuple[str, list[Tenant]]:
    """A team of `size` sales reps."""
    reps = [await add_user(client, tenant, "sales", full_name=f"销售{i}") for i in range(size)]
    team = await create(
        client, "/api/v1/teams", tenant.headers, name=f"华东 {size}", member_ids=[rep.user_id for rep in reps]
    )
    return team["id"], reps


async def _rule(client: httpx.AsyncClient, tenant: Tenant, **body: Any) -> dict[str, Any]:
    return await create(client, RULES, tenant.headers, **({"name": "规则"} | body))


async def _contact(client: httpx.AsyncClient, headers: dict[str, str], **body: Any) -> dict[str, Any]:
    return await create(client, CONTACTS, headers, **({"first_name": "伟"} | body))


async def _tasks_for(client: httpx.AsyncClient, tenant: Tenant, contact_id: str) -> list[dict[str, Any]]:
    response = await client.get("/api/v1/tasks", headers=tenant.headers, params={"contact_id": contact_id})
    assert response.status_code == 200, response.text
    return response.json()["items"]  # type: ignore[no-any-return]


async def test_round_robin_takes_turns_and_announces(client: httpx.AsyncClient, tenant: Tenant) -> None:
    team_id, reps = await _team(client, tenant, 3)
    rule = await _rule(client, tenant, strategy="round_robin", team_id=team_id)
    owners = [(await _contact(client, tenant.headers))["owner_id"] for _ in range(6)]
    ordered = sorted(rep.user_id for rep in reps)
    assert owners == ordered + ordered
    assert (await client.get(f"{RULES}/{rule['id']}", headers=tenant.headers)).json()["turn"] == 6
    assert (await client.get(f"{RULES}/{rule['id']}", headers=tenant.headers)).json()["version"] == 1

    contact = await _contact(client, tenant.headers)
    follow_ups = await _tasks_for(client, tenant, contact["id"])
    assert len(follow_ups) == 1 and follow_ups[0]["assignee_id"] == contact["owner_id"]
    assert follow_ups[0]["title"].startswith("跟进")
    events = (await client.get("/api/v1/events", headers=tenant.headers, params={"type": "contact.assigned"})).json()
    assert contact["id"] in {event["entity_id"] for event in events["items"]}
    history = (await client.get(f"{CONTACTS}/{contact['id']}/history", headers=tenant.headers)).json()["items"]
    assert any(entry["changes"].get("assigned_by_rule", {}).get("after") == rule["id"] for entry in history)


async def test_an_owner_sent_is_kept(client: httpx.AsyncClient, tenant: Tenant) -> None:
    team_id, _ = await _team(client, tenant, 2)
    await _rule(client, tenant, strategy="round_robin", team_id=team_id)
    assert (await _contact(client, tenant.headers, owner_id=tenant.user_id))["owner_id"] == tenant.user_id
    assert (await _contact(client, tenant.headers, owner_id=None))["owner_id"] is None


async def test_hundred_parallel_creates_split_exactly(client: httpx.AsyncClient, tenant: Tenant) -> None:
    team_id, reps = await _team(client, tenant, 4)
    await _rule(client, tenant, strategy="round_robin", team_id=team_id, follow_up_hours=None)

    async def one(index: int) -> str:
        response = await client.post(CONTACTS, headers=tenant.headers, json={"first_name": f"并发{index}"})
        assert response.status_code == 201, response.text
        return str(response.json()["owner_id"])

    owners = await asyncio.gather(*(one(index) for index in range(100)))
    assert Counter(owners) == {rep.user_id: 25 for rep in reps}


async def test_conditions_priorities_and_fixed_users(client: httpx.AsyncClient, tenant: Tenant) -> None:
    vip_rep = await add_user(client, tenant, "sales")
    everyone_rep = await add_user(client, tenant, "sales")
    await _rule(client, tenant, name="其余", priority=200, strategy="fixed_user", user_id=everyone_rep.user_id)
    await _rule(
        client,
        tenant,
        name="VIP",
        priority=10,
        strategy="fixed_user",
        user_id=vip_rep.user_id,
        condition={"field": "tags", "op": "contains", "value": "vip"},
    )
    assert (await _contact(client, tenant.headers, tags=["vip"]))["owner_id"] == vip_rep.user_id
    assert (await _contact(client, tenant.headers))["owner_id"] == everyone_rep.user_id
    listed = (await client.get(RULES, headers=tenant.headers)).json()["items"]
    assert [rule["name"] for rule in listed] == ["VIP", "其余"]


async def test_out_of_office_users_are_skipped(client: httpx.AsyncClient, tenant: Tenant) -> None:
    team_id, reps = await _team(client, tenant, 2)
    away, present = sorted(reps, key=lambda rep: rep.user_id)
    fallback = await add_user(client, tenant, "sales")
    await _rule(client, tenant, strategy="round_robin", team_id=team_id)
    await _rule(client, tenant, priority=500, strategy="fixed_user", user_id=fallback.user_id)
    today = date.today()
    response = await client.patch(
        f"/api/v1/users/{away.user_id}",
        headers=tenant.headers,
        json={
            "out_of_office_from": str(today - timedelta(days=1)),
            "out_of_office_until": str(today + timedelta(days=3)),
        },
    )
    assert response.status_code == 200, response.text
    owners = {(await _contact(client, tenant.headers))["owner_id"] for _ in range(3)}
    assert owners == {present.user_id}
    await client.patch(
        f"/api/v1/users/{present.user_id}", headers=tenant.headers, json={"out_of_office_from": str(today)}
    )
    assert (await _contact(client, tenant.headers))["owner_id"] == fallback.user_id, "the next rule takes over"
    response = await client.patch(
        f"/api/v1/users/{away.user_id}",
        headers=tenant.headers,
        json={"out_of_office_from": str(today), "out_of_office_until": str(today - timedelta(days=1))},
    )
    assert_problem(response, 422)


async def test_least_loaded_fills_the_emptiest_first(client: httpx.AsyncClient, tenant: Tenant) -> None:
    team_id, reps = await _team(client, tenant, 3)
    busy, medium, idle = reps
    for rep, count in ((busy, 3), (medium, 1)):
        for _ in range(count):
            await _contact(client, tenant.headers, owner_id=rep.user_id)
    await _rule(client, tenant, strategy="least_loaded", team_id=team_id, follow_up_hours=None)
    response = await client.post(
        f"{CONTACTS}/batch",
        headers=tenant.headers,
        json={"mode": "create", "records": [{"first_name": f"批{i}"} for i in range(5)]},
    )
    assert response.status_code == 200, response.text
    owners = [
        (await client.get(f"{CONTACTS}/{result['id']}", headers=tenant.headers)).json()["owner_id"]
        for result in response.json()["results"]
    ]
    # Loads 3/1/0: idle takes two (→2), then medium and idle tie at 2 … until all reach 3.
    assert Counter(owners) == {idle.user_id: 3, medium.user_id: 2}


async def test_territories_route_by_a_field(client: httpx.AsyncClient, tenant: Tenant) -> None:
    team_id, reps = await _team(client, tenant, 2)
    beijing = await add_user(client, tenant, "sales")
    await _rule(
        client,
        tenant,
        strategy="territory",
        territory_field="region",
        territory_map={"北京": {"user_id": beijing.user_id}, "上海": {"team_id": team_id}},
    )
    assert (await _contact(client, tenant.headers, region="北京"))["owner_id"] == beijing.user_id
    shanghai = {(await _contact(client, tenant.headers, region="上海"))["owner_id"] for _ in range(2)}
    assert shanghai == {rep.user_id for rep in reps}
    assert (await _contact(client, tenant.headers, region="广东"))["owner_id"] == tenant.user_id, "no rule: creator"


async def test_assign_on_demand(client: httpx.AsyncClient, tenant: Tenant) -> None:
    rep = await add_user(client, tenant, "sales")
    contact = await _contact(client, tenant.headers, city="深圳")
    url = f"{CONTACTS}/{contact['id']}/assign"
    assert_problem(await client.post(url, headers=tenant.headers), 409)
    await _rule(
        client,
        tenant,
        strategy="fixed_user",
        user_id=rep.user_id,
        condition={"field": "city", "op": "eq", "value": "深圳"},
    )
    assert_problem(await client.post(url, headers=tenant.headers | {"If-Match": 'W/"9"'}), 412)
    response = await client.post(url, headers=tenant.headers)
    assert response.status_code == 200, response.text
    assert response.json()["owner_id"] == rep.user_id and response.json()["task_id"]
    fetched = (await client.get(f"{CONTACTS}/{contact['id']}", headers=tenant.headers)).json()
    assert fetched["owner_id"] == rep.user_id and fetched["version"] == 2
    again = (await client.post(url, headers=tenant.headers)).json()
    assert again["task_id"] is None, "already the owner: nothing to follow up"


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"strategy": "fixed_user"}, ["body", "user_id"]),
        ({"strategy": "round_robin"}, ["body", "team_id"]),
        ({"strategy": "territory", "territory_field": "region"}, ["body", "territory_map"]),
        ({"strategy": "territory", "territory_field": "nope", "territory_map": {"a": {"user_id": None}}}, None),
        ({"strategy": "fixed_user", "user_id": "00000000-0000-7000-8000-000000000000"}, ["body", "user_id"]),
        ({"strategy": "round_robin", "team_id": "00000000-0000-7000-8000-000000000000"}, ["body", "team_id"]),
        ({"strategy": "least_loaded", "team_id": None, "load_measure": "calls"}, ["body", "load_measure"]),
        ({"strategy": "magic"}, ["body", "strategy"]),
    ],
)
async def test_bad_rules_are_refused(
    client: httpx.AsyncClient, tenant: Tenant, body: dict[str, Any], loc: list[str] | None
) -> None:
    response = await client.post(RULES, headers=tenant.headers, json={"name": "x"} | body)
    assert_problem(response, 422)
    if loc is not None:
        assert loc in error_locs(response)


async def test_a_bad_condition_is_refused(client: httpx.AsyncClient, tenant: Tenant) -> None:
    body = {"name": "x", "strategy": "fixed_user", "user_id": tenant.user_id, "condition": {"field": "x", "op": "eq"}}
    response = await client.post(RULES, headers=tenant.headers, json=body)
    assert error_locs(response)[0][:2] == ["body", "condition"]


async def test_rules_crud_roles_and_tenancy(client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant) -> None:
    rule = await _rule(client, tenant, strategy="fixed_user", user_id=tenant.user_id)
    url = f"{RULES}/{rule['id']}"
    assert_problem(await client.patch(url, headers=tenant.headers | {"If-Match": 'W/"5"'}, json={"priority": 1}), 412)
    patched = await client.patch(url, headers=tenant.headers, json={"priority": 1, "active": False})
    assert patched.status_code == 200 and patched.json()["version"] == 2
    sales = await add_user(client, tenant, "sales")
    assert_problem(await client.post(RULES, headers=sales.headers, json={"name": "x", "strategy": "fixed_user"}), 403)
    assert (await client.get(RULES, headers=sales.headers)).status_code == 200
    theirs = await _rule(client, other_tenant, strategy="fixed_user", user_id=other_tenant.user_id)
    their_contact = await _contact(client, other_tenant.headers)
    for response in (
        await client.get(f"{RULES}/{theirs['id']}", headers=tenant.headers),
        await client.patch(f"{RULES}/{theirs['id']}", headers=tenant.headers, json={"priority": 1}),
        await client.delete(f"{RULES}/{theirs['id']}", headers=tenant.headers),
        await client.post(f"{CONTACTS}/{their_contact['id']}/assign", headers=tenant.headers),
    ):
        assert_problem(response, 404)
    response = await client.post(
        RULES, headers=tenant.headers, json={"name": "x", "strategy": "fixed_user", "user_id": other_tenant.user_id}
    )
    assert error_locs(response) == [["body", "user_id"]]
    assert (await client.delete(url, headers=tenant.headers)).status_code == 204
    audit = await client.get("/api/v1/audit-log", headers=tenant.headers, params={"entity_type": "assignment_rule"})
    assert [entry["action"] for entry in audit.json()["items"]] == ["delete", "update", "create"]
