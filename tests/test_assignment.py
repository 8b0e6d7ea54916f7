"""Assignment rules: strategies (fixed user, round-robin, least-loaded, territory), conditions,
out-of-office users, batches, on-demand assignment, exactly fair turns under parallel creates,
the follow-up task and event, the rules' validation, roles and tenancy, and the per-owner load
counters (`owner_loads`) the database keeps exact through every kind of write."""

from __future__ import annotations

import asyncio
import importlib.util
import uuid
from collections import Counter
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.settings import Settings
from app.services import imports
from tests.helpers import Tenant, add_user, assert_problem, create, error_locs

RULES = "/api/v1/assignment-rules"
CONTACTS = "/api/v1/contacts"
DEALS = "/api/v1/deals"
MIGRATION = Path(__file__).parents[1] / "migrations" / "versions" / "2026_11_30_0018_owner_loads.py"


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
    after = (await client.get(f"{RULES}/{rule['id']}", headers=tenant.headers)).json()
    assert (after["version"], after["updated_at"]) == (1, rule["updated_at"]), "handing out is not an edit"

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


async def test_rules_sharing_a_team_skip_deactivated_members(client: httpx.AsyncClient, tenant: Tenant) -> None:
    team_id, reps = await _team(client, tenant, 3)
    gone, *staying = sorted(reps, key=lambda rep: rep.user_id)
    response = await client.post(f"/api/v1/users/{gone.user_id}/deactivate", headers=tenant.headers)
    assert response.status_code == 200, response.text
    await _rule(
        client,
        tenant,
        priority=10,
        strategy="territory",
        territory_field="region",
        territory_map={"上海": {"team_id": team_id}},
        follow_up_hours=None,
    )
    await _rule(client, tenant, priority=20, strategy="round_robin", team_id=team_id, follow_up_hours=None)
    owners = [(await _contact(client, tenant.headers, region=region))["owner_id"] for region in ("上海", "北京") * 2]
    # Each rule keeps its own turn over the team's members still active, in the team's order.
    assert owners == [staying[0].user_id, staying[0].user_id, staying[1].user_id, staying[1].user_id]


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


# --- the load counters -------------------------------------------------------------------------

Loads = dict[str, tuple[int, int]]


async def _kept(db: AsyncSession, tenant: Tenant) -> Loads:
    """owner → (open leads, open deals) as `owner_loads` holds them (zero rows left out)."""
    rows = await db.execute(
        text(
            "SELECT user_id, open_leads, open_deals FROM owner_loads "
            "WHERE organization_id = :org AND (open_leads, open_deals) <> (0, 0)"
        ),
        {"org": tenant.organization_id},
    )
    await db.rollback()
    return {str(user): (leads, deals) for user, leads, deals in rows}


async def _counted(db: AsyncSession, tenant: Tenant) -> Loads:
    """The same, counted from the contacts and deals themselves."""
    leads = await db.execute(
        text(
            "SELECT owner_id, count(*) FROM contacts WHERE organization_id = :org AND owner_id IS NOT NULL "
            "AND lifecycle_stage = 'lead' AND archived_at IS NULL GROUP BY owner_id"
        ),
        {"org": tenant.organization_id},
    )
    deals = await db.execute(
        text(
            "SELECT owner_id, count(*) FROM deals WHERE organization_id = :org AND owner_id IS NOT NULL "
            "AND status = 'open' AND archived_at IS NULL GROUP BY owner_id"
        ),
        {"org": tenant.organization_id},
    )
    await db.rollback()
    counted: dict[str, list[int]] = {}
    for user, count in leads:
        counted.setdefault(str(user), [0, 0])[0] = count
    for user, count in deals:
        counted.setdefault(str(user), [0, 0])[1] = count
    return {user: (pair[0], pair[1]) for user, pair in counted.items()}


async def _exact(db: AsyncSession, tenant: Tenant) -> Loads:
    kept = await _kept(db, tenant)
    assert kept == await _counted(db, tenant)
    return kept


async def _sql(db: AsyncSession, statement: str, **params: Any) -> None:
    await db.execute(text(statement), params)
    await db.commit()


async def test_lead_counters_follow_every_kind_of_contact_write(
    client: httpx.AsyncClient, tenant: Tenant, db: AsyncSession
) -> None:
    a, b = [await add_user(client, tenant, "sales") for _ in range(2)]
    first = await _contact(client, tenant.headers, owner_id=a.user_id)
    await _contact(client, tenant.headers, owner_id=a.user_id, lifecycle_stage="customer")
    await _contact(client, tenant.headers, owner_id=None)
    assert await _exact(db, tenant) == {a.user_id: (1, 0)}

    # A batch is written with COPY: one statement, one aggregated change per owner.
    records = [{"first_name": f"批{i}", "owner_id": (a, b)[i % 2].user_id} for i in range(9)]
    response = await client.post(
        f"{CONTACTS}/batch", headers=tenant.headers, json={"mode": "create", "records": records}
    )
    assert response.status_code == 200, response.text
    assert await _exact(db, tenant) == {a.user_id: (6, 0), b.user_id: (4, 0)}

    url = f"{CONTACTS}/{first['id']}"
    assert (await client.patch(url, headers=tenant.headers, json={"owner_id": b.user_id})).status_code == 200
    assert await _exact(db, tenant) == {a.user_id: (5, 0), b.user_id: (5, 0)}
    assert (await client.delete(url, headers=tenant.headers)).status_code == 200
    assert await _exact(db, tenant) == {a.user_id: (5, 0), b.user_id: (4, 0)}
    assert (await client.post(f"{url}/restore", headers=tenant.headers)).status_code == 200
    assert await _exact(db, tenant) == {a.user_id: (5, 0), b.user_id: (5, 0)}

    # Stage changes, swaps and deletes many rows at once, straight in SQL.
    org = tenant.organization_id
    await _sql(db, "UPDATE contacts SET lifecycle_stage = 'customer' WHERE id = :id", id=first["id"])
    assert await _exact(db, tenant) == {a.user_id: (5, 0), b.user_id: (4, 0)}
    await _sql(db, "UPDATE contacts SET lifecycle_stage = 'lead' WHERE organization_id = :org", org=org)
    assert await _exact(db, tenant) == {a.user_id: (6, 0), b.user_id: (5, 0)}
    await _sql(
        db,
        "UPDATE contacts SET owner_id = CASE owner_id WHEN :a THEN CAST(:b AS uuid) ELSE CAST(:a AS uuid) END "
        "WHERE organization_id = :org AND owner_id IS NOT NULL",
        a=a.user_id,
        b=b.user_id,
        org=org,
    )
    assert await _exact(db, tenant) == {a.user_id: (5, 0), b.user_id: (6, 0)}
    await _sql(db, "UPDATE contacts SET title = '经理' WHERE organization_id = :org", org=org)
    assert await _exact(db, tenant) == {a.user_id: (5, 0), b.user_id: (6, 0)}
    await _sql(
        db,
        "UPDATE contacts SET archived_at = now() WHERE organization_id = :org AND owner_id = :b",
        org=org,
        b=b.user_id,
    )
    assert await _exact(db, tenant) == {a.user_id: (5, 0)}
    await _sql(
        db,
        "DELETE FROM lead_scores WHERE organization_id = :org AND contact_id IN "
        "(SELECT id FROM contacts WHERE organization_id = :org AND owner_id = :a)",
        org=org,
        a=a.user_id,
    )
    await _sql(db, "DELETE FROM contacts WHERE organization_id = :org AND owner_id = :a", org=org, a=a.user_id)
    assert await _exact(db, tenant) == {}


async def test_merging_archives_the_duplicates_and_uncounts_them(
    client: httpx.AsyncClient, tenant: Tenant, db: AsyncSession
) -> None:
    rep = await add_user(client, tenant, "sales")
    survivor = await _contact(client, tenant.headers, owner_id=rep.user_id, email="wei@example.com")
    duplicate = await _contact(client, tenant.headers, owner_id=rep.user_id, email="wei2@example.com")
    assert await _exact(db, tenant) == {rep.user_id: (2, 0)}
    merged = await client.post(
        f"{CONTACTS}/{survivor['id']}/merge", headers=tenant.headers, json={"merge_ids": [duplicate["id"]]}
    )
    assert merged.status_code == 200, merged.text
    assert await _exact(db, tenant) == {rep.user_id: (1, 0)}


async def test_imported_and_assigned_contacts_are_counted(
    client: httpx.AsyncClient,
    tenant: Tenant,
    db: AsyncSession,
    app: Any,
    settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(settings, "data_dir", tmp_path)
    team_id, reps = await _team(client, tenant, 2)
    await _rule(client, tenant, strategy="least_loaded", team_id=team_id, follow_up_hours=None)
    content = "email,姓名\n" + "".join(f"imp{i}@example.com,王{i}\n" for i in range(7))
    created = await client.post(
        "/api/v1/imports",
        headers=tenant.headers,
        files={"file": ("customers.csv", content.encode())},
        data={"entity": "contacts"},
    )
    assert created.status_code == 202, created.text
    result = await imports.run_import(
        app.state.session_factory, uuid.UUID(tenant.organization_id), uuid.UUID(created.json()["id"])
    )
    assert result == "done"
    loads = await _exact(db, tenant)
    assert sorted(loads.values()) == [(3, 0), (4, 0)], "least-loaded split the import evenly"
    # The next ones go to whoever has fewer, read from the counters.
    lighter = min(loads, key=lambda user: loads[user])
    assert (await _contact(client, tenant.headers))["owner_id"] == lighter
    assert await _exact(db, tenant) == {rep.user_id: (4, 0) for rep in reps}


async def test_open_deal_counters_follow_owners_stages_and_archiving(
    client: httpx.AsyncClient, tenant: Tenant, db: AsyncSession
) -> None:
    a, b = [await add_user(client, tenant, "sales") for _ in range(2)]
    pipeline = (await client.get("/api/v1/pipelines", headers=tenant.headers)).json()["items"][0]
    won = next(stage["id"] for stage in pipeline["stages"] if stage["kind"] == "won")
    first_open = next(stage["id"] for stage in pipeline["stages"] if stage["kind"] == "open")
    deals = [await create(client, DEALS, tenant.headers, name=f"商机{i}", owner_id=a.user_id) for i in range(3)]
    assert await _exact(db, tenant) == {a.user_id: (0, 3)}
    moved = await client.post(f"{DEALS}/{deals[0]['id']}/move", headers=tenant.headers, json={"stage_id": won})
    assert moved.status_code == 200, moved.text
    assert await _exact(db, tenant) == {a.user_id: (0, 2)}
    reopened = await client.post(
        f"{DEALS}/{deals[0]['id']}/move", headers=tenant.headers, json={"stage_id": first_open}
    )
    assert reopened.status_code == 200, reopened.text
    assert await _exact(db, tenant) == {a.user_id: (0, 3)}
    patched = await client.patch(f"{DEALS}/{deals[1]['id']}", headers=tenant.headers, json={"owner_id": b.user_id})
    assert patched.status_code == 200, patched.text
    assert await _exact(db, tenant) == {a.user_id: (0, 2), b.user_id: (0, 1)}
    assert (await client.delete(f"{DEALS}/{deals[2]['id']}", headers=tenant.headers)).status_code == 200
    assert await _exact(db, tenant) == {a.user_id: (0, 1), b.user_id: (0, 1)}
    assert (await client.post(f"{DEALS}/{deals[2]['id']}/restore", headers=tenant.headers)).status_code == 200
    assert await _exact(db, tenant) == {a.user_id: (0, 2), b.user_id: (0, 1)}


async def test_least_loaded_by_open_deals(client: httpx.AsyncClient, tenant: Tenant, db: AsyncSession) -> None:
    team_id, reps = await _team(client, tenant, 2)
    busy, idle = reps
    for i in range(2):
        await create(client, DEALS, tenant.headers, name=f"商机{i}", owner_id=busy.user_id)
    await _contact(client, tenant.headers, owner_id=idle.user_id)  # leads do not count here
    await _rule(client, tenant, strategy="least_loaded", team_id=team_id, load_measure="deals", follow_up_hours=None)
    owners = [(await _contact(client, tenant.headers))["owner_id"] for _ in range(2)]
    assert owners == [idle.user_id, idle.user_id], "new contacts are not open deals: idle stays the least loaded"
    assert await _exact(db, tenant) == {busy.user_id: (0, 2), idle.user_id: (3, 0)}


async def test_parallel_assigned_creates_keep_the_counters_exact(
    client: httpx.AsyncClient, tenant: Tenant, db: AsyncSession
) -> None:
    team_id, reps = await _team(client, tenant, 3)
    await _rule(client, tenant, strategy="least_loaded", team_id=team_id, follow_up_hours=None)

    async def one(index: int) -> None:
        response = await client.post(CONTACTS, headers=tenant.headers, json={"first_name": f"并发{index}"})
        assert response.status_code == 201, response.text

    await asyncio.gather(*(one(index) for index in range(30)))
    assert await _exact(db, tenant) == {rep.user_id: (10, 0) for rep in reps}


async def test_the_migrations_backfill_counts_what_the_triggers_keep(
    client: httpx.AsyncClient, tenant: Tenant, db: AsyncSession
) -> None:
    rep = await add_user(client, tenant, "sales")
    for stage in ("lead", "lead", "customer"):
        await _contact(client, tenant.headers, owner_id=rep.user_id, lifecycle_stage=stage)
    await create(client, DEALS, tenant.headers, name="商机", owner_id=tenant.user_id)
    spec = importlib.util.spec_from_file_location("owner_loads_migration", MIGRATION)
    assert spec is not None and spec.loader is not None
    migration = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(migration)
    counted = migration._COUNTED
    backfill = migration._BACKFILL.format(contacts=counted["contacts"][1], deals=counted["deals"][1])
    query = backfill.split("\n", 2)[2]  # its SELECT, without the INSERT
    rows = await db.execute(
        text(
            f"SELECT * FROM ({query}) AS backfill(organization_id, user_id, leads, deals) WHERE organization_id = :org"
        ),
        {"org": tenant.organization_id},
    )
    await db.rollback()
    assert {str(row.user_id): (row.leads, row.deals) for row in rows} == await _exact(db, tenant)
    assert await _kept(db, tenant) == {rep.user_id: (2, 0), tenant.user_id: (0, 1)}


async def test_assigned_follows_created_and_no_task_when_asked(client: httpx.AsyncClient, tenant: Tenant) -> None:
    rep = await add_user(client, tenant, "sales")
    rule = await _rule(client, tenant, strategy="fixed_user", user_id=rep.user_id, follow_up_hours=None)
    assert rule["follow_up_hours"] is None
    contact = await _contact(client, tenant.headers)
    assert await _tasks_for(client, tenant, contact["id"]) == []
    events = (await client.get("/api/v1/events", headers=tenant.headers, params={"type": "contact.*"})).json()
    mine = [event["type"] for event in events["items"] if event["entity_id"] == contact["id"]]
    assert mine == ["contact.created", "contact.assigned"]
