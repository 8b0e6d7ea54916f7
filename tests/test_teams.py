"""Teams: CRUD, membership, names, concurrency control, roles, tenancy, audit.

How teams narrow record visibility is tested with the contacts (test_contacts.py).
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models.audit import AuditEntry
from app.models.organization import Team, TeamMember
from tests.helpers import Tenant, add_api_key, add_user, assert_problem, create, error_locs

TEAMS = "/api/v1/teams"


async def _team_row(db: AsyncSession, team_id: str) -> Team | None:
    statement = select(Team).where(Team.id == uuid.UUID(team_id)).execution_options(populate_existing=True)
    return (await db.execute(statement)).scalar_one_or_none()


async def _member_ids(db: AsyncSession, team_id: str) -> set[str]:
    rows = await db.execute(select(TeamMember.user_id).where(TeamMember.team_id == uuid.UUID(team_id)))
    return {str(user_id) for user_id in rows.scalars()}


async def _team_count(db: AsyncSession, organization_id: str) -> int:
    statement = select(func.count()).select_from(Team).where(Team.organization_id == uuid.UUID(organization_id))
    return int(await db.scalar(statement) or 0)


async def test_create_get_list_update_delete(client: httpx.AsyncClient, tenant: Tenant, db: AsyncSession) -> None:
    sales = await add_user(client, tenant, "sales")
    support = await add_user(client, tenant, "support")
    response = await client.post(
        TEAMS,
        headers=tenant.headers,
        json={
            "name": " 华东销售部 ",
            "description": "上海、江苏、浙江",
            "member_ids": [support.user_id, sales.user_id, support.user_id],
        },
    )
    assert response.status_code == 201, response.text
    team = response.json()
    url = f"{TEAMS}/{team['id']}"
    assert response.headers["location"] == url and response.headers["etag"] == 'W/"1"'
    assert team["name"] == "华东销售部" and team["description"] == "上海、江苏、浙江"
    assert team["member_ids"] == sorted([sales.user_id, support.user_id])
    assert team["version"] == 1 and "organization_id" not in team
    row = await _team_row(db, team["id"])
    assert row is not None and str(row.organization_id) == tenant.organization_id and row.name == "华东销售部"
    assert await _member_ids(db, team["id"]) == {sales.user_id, support.user_id}

    got = await client.get(url, headers=tenant.headers)
    assert got.status_code == 200 and got.headers["etag"] == 'W/"1"'
    assert got.json() == team

    empty = await create(client, TEAMS, tenant.headers, name="华北")
    assert empty["member_ids"] == [] and empty["description"] is None
    listed = await client.get(TEAMS, headers=tenant.headers)
    assert listed.status_code == 200 and listed.json()["next_cursor"] is None
    assert {t["id"]: t["member_ids"] for t in listed.json()["items"]} == {
        team["id"]: team["member_ids"],
        empty["id"]: [],
    }

    patched = await client.patch(url, headers=tenant.headers, json={"name": "华东", "description": None})
    assert patched.status_code == 200, patched.text
    assert (patched.json()["name"], patched.json()["description"]) == ("华东", None)
    assert patched.json()["member_ids"] == team["member_ids"]  # untouched when not sent
    assert patched.json()["version"] == 2 and patched.headers["etag"] == 'W/"2"'
    row = await _team_row(db, team["id"])
    assert row is not None and (row.name, row.description, row.version) == ("华东", None, 2)

    deleted = await client.delete(url, headers=tenant.headers)
    assert deleted.status_code == 204 and deleted.content == b""
    assert_problem(await client.get(url, headers=tenant.headers), 404)
    assert_problem(await client.patch(url, headers=tenant.headers, json={"name": "x"}), 404)
    assert_problem(await client.delete(url, headers=tenant.headers), 404)
    assert await _team_row(db, team["id"]) is None
    assert await _member_ids(db, team["id"]) == set()
    remaining = (await client.get(TEAMS, headers=tenant.headers)).json()["items"]
    assert [t["id"] for t in remaining] == [empty["id"]]


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({}, ["body", "name"]),
        ({"name": ""}, ["body", "name"]),
        ({"name": "   "}, ["body", "name"]),
        ({"name": "x" * 201}, ["body", "name"]),
        ({"name": "x", "member_ids": ["not-a-uuid"]}, ["body", "member_ids", 0]),
        ({"name": "x", "member_ids": None}, ["body", "member_ids"]),
        ({"name": "x", "visibility": "all"}, ["body", "visibility"]),
    ],
)
async def test_validation_errors(
    client: httpx.AsyncClient, tenant: Tenant, db: AsyncSession, body: dict[str, Any], loc: list[Any]
) -> None:
    response = await client.post(TEAMS, headers=tenant.headers, json=body)
    assert_problem(response, 422)
    assert loc in error_locs(response), error_locs(response)
    assert await _team_count(db, tenant.organization_id) == 0


async def test_member_ids_must_be_users_of_the_organisation(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant, db: AsyncSession
) -> None:
    sales = await add_user(client, tenant, "sales")
    foreigner = await add_user(client, other_tenant, "sales")
    response = await client.post(
        TEAMS,
        headers=tenant.headers,
        json={
            "name": "华东",
            "member_ids": [sales.user_id, foreigner.user_id, str(uuid.uuid4()), other_tenant.user_id],
        },
    )
    assert_problem(response, 422)
    assert error_locs(response) == [["body", "member_ids", 1], ["body", "member_ids", 2], ["body", "member_ids", 3]]
    assert await _team_count(db, tenant.organization_id) == 0

    team = await create(client, TEAMS, tenant.headers, name="华东", member_ids=[sales.user_id])
    url = f"{TEAMS}/{team['id']}"
    refused = await client.patch(url, headers=tenant.headers, json={"member_ids": [str(uuid.uuid4())]})
    assert error_locs(refused) == [["body", "member_ids", 0]]
    assert await _member_ids(db, team["id"]) == {sales.user_id}
    row = await _team_row(db, team["id"])
    assert row is not None and row.version == 1


async def test_member_error_locs_point_into_the_list_as_sent(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    sales = await add_user(client, tenant, "sales")
    response = await client.post(
        TEAMS,
        headers=tenant.headers,
        json={"name": "华东", "member_ids": [sales.user_id, sales.user_id, other_tenant.user_id]},
    )
    # The foreign id is the third item of the list the client sent.
    assert error_locs(response) == [["body", "member_ids", 2]]


async def test_team_names_are_unique_per_organisation(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant, db: AsyncSession
) -> None:
    first = await create(client, TEAMS, tenant.headers, name="华东销售部")
    assert_problem(await client.post(TEAMS, headers=tenant.headers, json={"name": "华东销售部"}), 409)
    assert_problem(await client.post(TEAMS, headers=tenant.headers, json={"name": " 华东销售部 "}), 409)
    assert await _team_count(db, tenant.organization_id) == 1

    theirs = await create(client, TEAMS, other_tenant.headers, name="华东销售部")
    assert theirs["id"] != first["id"]

    second = await create(client, TEAMS, tenant.headers, name="华北销售部")
    renamed = await client.patch(f"{TEAMS}/{second['id']}", headers=tenant.headers, json={"name": "华东销售部"})
    assert_problem(renamed, 409)
    row = await _team_row(db, second["id"])
    assert row is not None and (row.name, row.version) == ("华北销售部", 1)
    # Freed once the first team is deleted.
    assert (await client.delete(f"{TEAMS}/{first['id']}", headers=tenant.headers)).status_code == 204
    await create(client, TEAMS, tenant.headers, name="华东销售部")


async def test_patch_member_ids_replaces_membership_and_bumps_version(
    client: httpx.AsyncClient, tenant: Tenant, db: AsyncSession
) -> None:
    a, b, c = [await add_user(client, tenant, "sales") for _ in range(3)]
    team = await create(client, TEAMS, tenant.headers, name="华东", member_ids=[a.user_id, b.user_id])
    url = f"{TEAMS}/{team['id']}"

    replaced = await client.patch(
        url, headers={**tenant.headers, "If-Match": 'W/"1"'}, json={"member_ids": [c.user_id, b.user_id]}
    )
    assert replaced.status_code == 200, replaced.text
    assert replaced.json()["member_ids"] == sorted([b.user_id, c.user_id])
    assert replaced.json()["version"] == 2 and replaced.headers["etag"] == 'W/"2"'
    assert replaced.json()["updated_at"] > team["updated_at"]
    assert replaced.json()["name"] == "华东"
    assert await _member_ids(db, team["id"]) == {b.user_id, c.user_id}
    row = await _team_row(db, team["id"])
    assert row is not None and row.version == 2

    # The same membership again is no change: no new version.
    same = await client.patch(url, headers=tenant.headers, json={"member_ids": [b.user_id, c.user_id]})
    assert same.status_code == 200 and same.json()["version"] == 2

    emptied = await client.patch(url, headers={**tenant.headers, "If-Match": 'W/"2"'}, json={"member_ids": []})
    assert emptied.status_code == 200 and emptied.json()["member_ids"] == []
    assert emptied.json()["version"] == 3
    assert await _member_ids(db, team["id"]) == set()
    assert error_locs(await client.patch(url, headers=tenant.headers, json={"member_ids": None})) == [
        ["body", "member_ids"]
    ]

    updates = (await client.get("/api/v1/audit-log", params={"entity_id": team["id"]}, headers=tenant.headers)).json()[
        "items"
    ]
    assert [e["action"] for e in updates] == ["update", "update", "create"]
    assert updates[1]["changes"] == {
        "member_ids": {"before": sorted([a.user_id, b.user_id]), "after": sorted([b.user_id, c.user_id])}
    }
    assert updates[0]["changes"]["member_ids"]["after"] == []


async def test_stale_if_match_is_412_and_writes_nothing(
    client: httpx.AsyncClient, tenant: Tenant, db: AsyncSession
) -> None:
    a = await add_user(client, tenant, "sales")
    team = await create(client, TEAMS, tenant.headers, name="华东", member_ids=[a.user_id])
    url = f"{TEAMS}/{team['id']}"
    assert (await client.patch(url, headers=tenant.headers, json={"description": "v2"})).status_code == 200
    stale = {**tenant.headers, "If-Match": 'W/"1"'}
    assert_problem(await client.patch(url, headers=stale, json={"name": "lost", "member_ids": []}), 412)
    assert_problem(await client.delete(url, headers=stale), 412)
    row = await _team_row(db, team["id"])
    assert row is not None and (row.name, row.description, row.version) == ("华东", "v2", 2)
    assert await _member_ids(db, team["id"]) == {a.user_id}
    audit_rows = await db.scalar(select(func.count()).where(AuditEntry.entity_id == uuid.UUID(team["id"])))
    assert audit_rows == 2
    current = {**tenant.headers, "If-Match": 'W/"2"'}
    assert (await client.delete(url, headers=current)).status_code == 204
    assert await _team_row(db, team["id"]) is None


async def test_delete_is_audited(client: httpx.AsyncClient, tenant: Tenant) -> None:
    a = await add_user(client, tenant, "sales")
    team = await create(client, TEAMS, tenant.headers, name="华东", member_ids=[a.user_id])
    await client.delete(f"{TEAMS}/{team['id']}", headers=tenant.headers)
    entries = (await client.get("/api/v1/audit-log", params={"entity_id": team["id"]}, headers=tenant.headers)).json()[
        "items"
    ]
    assert [e["action"] for e in entries] == ["delete", "create"]
    assert entries[0]["entity_type"] == "team"
    assert entries[0]["changes"]["name"] == {"before": "华东", "after": None}
    assert entries[0]["changes"]["member_ids"] == {"before": [a.user_id], "after": None}
    assert entries[1]["changes"]["member_ids"] == {"before": None, "after": [a.user_id]}


@pytest.mark.parametrize("role", ["sales", "support", "marketing", "viewer"])
async def test_read_only_roles_cannot_write_teams(
    client: httpx.AsyncClient, tenant: Tenant, db: AsyncSession, role: str
) -> None:
    reader = await add_user(client, tenant, role)
    team = await create(client, TEAMS, tenant.headers, name="华东")
    url = f"{TEAMS}/{team['id']}"
    assert (await client.get(url, headers=reader.headers)).status_code == 200
    assert [t["id"] for t in (await client.get(TEAMS, headers=reader.headers)).json()["items"]] == [team["id"]]
    assert_problem(await client.post(TEAMS, headers=reader.headers, json={"name": "mine"}), 403)
    assert_problem(
        await client.patch(url, headers=reader.headers, json={"member_ids": [reader.user_id]}),
        403,
    )
    assert_problem(await client.delete(url, headers=reader.headers), 403)
    assert await _team_count(db, tenant.organization_id) == 1
    assert await _member_ids(db, team["id"]) == set()


@pytest.mark.parametrize("role", ["manager", "admin"])
async def test_manager_and_admin_can_write_teams(
    client: httpx.AsyncClient, tenant: Tenant, db: AsyncSession, role: str
) -> None:
    writer = await add_user(client, tenant, role)
    sales = await add_user(client, tenant, "sales")
    team = await create(client, TEAMS, writer.headers, name="华南", member_ids=[sales.user_id])
    url = f"{TEAMS}/{team['id']}"
    patched = await client.patch(url, headers=writer.headers, json={"member_ids": [sales.user_id, writer.user_id]})
    assert patched.status_code == 200
    assert await _member_ids(db, team["id"]) == {sales.user_id, writer.user_id}
    assert (await client.delete(url, headers=writer.headers)).status_code == 204
    assert await _team_row(db, team["id"]) is None


async def test_api_keys_can_read_but_not_write_teams(client: httpx.AsyncClient, tenant: Tenant) -> None:
    team = await create(client, TEAMS, tenant.headers, name="华东")
    reader = await add_api_key(client, tenant, ["teams:read"])
    assert (await client.get(f"{TEAMS}/{team['id']}", headers=reader)).status_code == 200
    assert_problem(await client.post(TEAMS, headers=reader, json={"name": "x"}), 403)
    assert_problem(await client.delete(f"{TEAMS}/{team['id']}", headers=reader), 403)
    contacts_only = await add_api_key(client, tenant, ["contacts:read"])
    assert_problem(await client.get(TEAMS, headers=contacts_only), 403)
    assert_problem(await client.get(TEAMS), 401)


async def test_another_organisations_team_is_404_everywhere(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant, db: AsyncSession
) -> None:
    theirs = await create(client, TEAMS, other_tenant.headers, name="秘密团队", member_ids=[other_tenant.user_id])
    url = f"{TEAMS}/{theirs['id']}"
    for method, body in [
        ("GET", None),
        ("PATCH", {"name": "hijacked"}),
        ("PATCH", {"member_ids": [tenant.user_id]}),
        ("DELETE", None),
    ]:
        assert_problem(await client.request(method, url, headers=tenant.headers, json=body), 404)
    assert_problem(await client.get(f"{TEAMS}/{uuid.uuid4()}", headers=tenant.headers), 404)
    assert (await client.get(TEAMS, headers=tenant.headers)).json()["items"] == []
    row = await _team_row(db, theirs["id"])
    assert row is not None and (row.name, row.version) == ("秘密团队", 1)
    assert await _member_ids(db, theirs["id"]) == {other_tenant.user_id}


async def test_paging_returns_each_team_once(client: httpx.AsyncClient, tenant: Tenant) -> None:
    created = [(await create(client, TEAMS, tenant.headers, name=f"team {i}"))["id"] for i in range(5)]
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = (await client.get(TEAMS, params=params, headers=tenant.headers)).json()
        assert len(page["items"]) <= 2
        seen += [t["id"] for t in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert sorted(seen) == sorted(created) and len(seen) == len(set(seen))


async def test_idempotent_replay_creates_one_team(client: httpx.AsyncClient, tenant: Tenant, db: AsyncSession) -> None:
    headers = {**tenant.headers, "Idempotency-Key": str(uuid.uuid4())}
    first = await client.post(TEAMS, headers=headers, json={"name": "华东"})
    second = await client.post(TEAMS, headers=headers, json={"name": "华东"})
    assert first.status_code == second.status_code == 201
    assert second.json() == first.json() and second.headers["idempotent-replayed"] == "true"
    assert await _team_count(db, tenant.organization_id) == 1
    assert error_locs(await client.post(TEAMS, headers=headers, json={"name": "华北"})) == [
        ["header", "Idempotency-Key"]
    ]
    assert await _team_count(db, tenant.organization_id) == 1
