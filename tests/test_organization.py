"""The caller's organisation: reading it, changing its name and record visibility."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models.audit import AuditEntry
from app.models.organization import Organization
from tests.helpers import Tenant, add_api_key, add_user, assert_problem, error_locs

ORGANIZATION = "/api/v1/organization"


async def _organization_row(db: AsyncSession, organization_id: str) -> Organization:
    statement = (
        select(Organization)
        .where(Organization.id == uuid.UUID(organization_id))
        .execution_options(populate_existing=True)
    )
    return (await db.execute(statement)).scalar_one()


async def test_get_returns_the_callers_organisation_with_an_etag(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    response = await client.get(ORGANIZATION, headers=tenant.headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["id"] == tenant.organization_id
    assert body["name"] == "天元贸易" and body["record_visibility"] == "all" and body["currency"] == "CNY"
    assert body["version"] == 1 and response.headers["etag"] == 'W/"1"'
    assert set(body) == {
        "id",
        "name",
        "record_visibility",
        "merge_email_duplicates",
        "currency",
        "lead_grade_thresholds",
        "lifecycle_rules",
        "created_at",
        "updated_at",
        "version",
    }
    theirs = (await client.get(ORGANIZATION, headers=other_tenant.headers)).json()
    assert theirs["id"] == other_tenant.organization_id and theirs["name"] == "Another organisation"


@pytest.mark.parametrize("role", ["admin", "manager", "sales", "support", "marketing", "viewer"])
async def test_every_role_reads_its_organisation(client: httpx.AsyncClient, tenant: Tenant, role: str) -> None:
    person = await add_user(client, tenant, role)
    response = await client.get(ORGANIZATION, headers=person.headers)
    assert response.status_code == 200 and response.json()["id"] == tenant.organization_id


async def test_patch_name_and_visibility(client: httpx.AsyncClient, tenant: Tenant, db: AsyncSession) -> None:
    response = await client.patch(
        ORGANIZATION,
        headers={**tenant.headers, "If-Match": 'W/"1"'},
        json={"name": " 远景科技 ", "record_visibility": "team"},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["name"], body["record_visibility"], body["version"]) == ("远景科技", "team", 2)
    assert response.headers["etag"] == 'W/"2"'
    row = await _organization_row(db, tenant.organization_id)
    assert (row.name, row.record_visibility, row.version) == ("远景科技", "team", 2)
    got = await client.get(ORGANIZATION, headers=tenant.headers)
    assert got.json() == body and got.headers["etag"] == 'W/"2"'

    only_visibility = await client.patch(ORGANIZATION, headers=tenant.headers, json={"record_visibility": "own"})
    assert only_visibility.status_code == 200
    assert (only_visibility.json()["name"], only_visibility.json()["record_visibility"]) == ("远景科技", "own")
    assert only_visibility.json()["version"] == 3

    entries = (
        await client.get(
            "/api/v1/audit-log",
            params={"entity_type": "organization", "entity_id": tenant.organization_id},
            headers=tenant.headers,
        )
    ).json()["items"]
    assert [e["action"] for e in entries] == ["update", "update", "create"]
    assert entries[1]["changes"] == {
        "name": {"before": "天元贸易", "after": "远景科技"},
        "record_visibility": {"before": "all", "after": "team"},
    }
    assert entries[0]["changes"] == {"record_visibility": {"before": "team", "after": "own"}}
    assert entries[0]["actor_id"] == tenant.user_id


async def test_a_patch_that_changes_nothing_keeps_the_version(
    client: httpx.AsyncClient, tenant: Tenant, db: AsyncSession
) -> None:
    response = await client.patch(ORGANIZATION, headers=tenant.headers, json={"name": "天元贸易"})
    assert response.status_code == 200 and response.json()["version"] == 1
    assert (await _organization_row(db, tenant.organization_id)).version == 1
    audit_rows = await db.scalar(
        select(func.count()).where(
            AuditEntry.entity_id == uuid.UUID(tenant.organization_id), AuditEntry.action == "update"
        )
    )
    assert audit_rows == 0


async def test_an_admin_can_change_the_organisation(client: httpx.AsyncClient, tenant: Tenant) -> None:
    admin = await add_user(client, tenant, "admin")
    response = await client.patch(ORGANIZATION, headers=admin.headers, json={"record_visibility": "own"})
    assert response.status_code == 200 and response.json()["record_visibility"] == "own"


@pytest.mark.parametrize("role", ["manager", "sales", "support", "marketing", "viewer"])
async def test_other_roles_cannot_change_the_organisation(
    client: httpx.AsyncClient, tenant: Tenant, db: AsyncSession, role: str
) -> None:
    person = await add_user(client, tenant, role)
    assert_problem(await client.patch(ORGANIZATION, headers=person.headers, json={"name": "mine now"}), 403)
    assert_problem(await client.patch(ORGANIZATION, headers=person.headers, json={"record_visibility": "all"}), 403)
    row = await _organization_row(db, tenant.organization_id)
    assert (row.name, row.record_visibility, row.version) == ("天元贸易", "all", 1)


async def test_api_keys_read_but_never_change_the_organisation(
    client: httpx.AsyncClient, tenant: Tenant, db: AsyncSession
) -> None:
    reader = await add_api_key(client, tenant, ["organization:read"])
    response = await client.get(ORGANIZATION, headers=reader)
    assert response.status_code == 200 and response.json()["id"] == tenant.organization_id
    assert_problem(await client.patch(ORGANIZATION, headers=reader, json={"name": "x"}), 403)
    contacts_only = await add_api_key(client, tenant, ["contacts:read"])
    assert_problem(await client.get(ORGANIZATION, headers=contacts_only), 403)
    refused = await client.post(
        "/api/v1/api-keys", headers=tenant.headers, json={"name": "x", "scopes": ["organization:write"]}
    )
    assert error_locs(refused) == [["body", "scopes", 0]]
    assert (await _organization_row(db, tenant.organization_id)).name == "天元贸易"
    assert_problem(await client.get(ORGANIZATION), 401)


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"record_visibility": "nobody"}, ["body", "record_visibility"]),
        ({"record_visibility": "ALL"}, ["body", "record_visibility"]),
        ({"record_visibility": None}, ["body", "record_visibility"]),
        ({"record_visibility": 1}, ["body", "record_visibility"]),
        ({"name": ""}, ["body", "name"]),
        ({"name": "   "}, ["body", "name"]),
        ({"name": None}, ["body", "name"]),
        ({"name": "x" * 201}, ["body", "name"]),
        ({"id": str(uuid.uuid4())}, ["body", "id"]),
        ({"version": 9}, ["body", "version"]),
    ],
)
async def test_validation_errors(
    client: httpx.AsyncClient, tenant: Tenant, db: AsyncSession, body: dict[str, Any], loc: list[Any]
) -> None:
    response = await client.patch(ORGANIZATION, headers=tenant.headers, json=body)
    assert_problem(response, 422)
    assert loc in error_locs(response), error_locs(response)
    row = await _organization_row(db, tenant.organization_id)
    assert (row.name, row.record_visibility, row.version) == ("天元贸易", "all", 1)


async def test_stale_if_match_is_412_and_writes_nothing(
    client: httpx.AsyncClient, tenant: Tenant, db: AsyncSession
) -> None:
    first = await client.patch(ORGANIZATION, headers={**tenant.headers, "If-Match": 'W/"1"'}, json={"name": "v2"})
    assert first.status_code == 200
    for if_match in ('W/"1"', '"1"', 'W/"3"', "garbage"):
        stale = await client.patch(
            ORGANIZATION, headers={**tenant.headers, "If-Match": if_match}, json={"record_visibility": "own"}
        )
        assert_problem(stale, 412)
    row = await _organization_row(db, tenant.organization_id)
    assert (row.name, row.record_visibility, row.version) == ("v2", "all", 2)
    audit_rows = await db.scalar(
        select(func.count()).where(
            AuditEntry.entity_id == uuid.UUID(tenant.organization_id), AuditEntry.action == "update"
        )
    )
    assert audit_rows == 1
    current = await client.patch(ORGANIZATION, headers={**tenant.headers, "If-Match": 'W/"2"'}, json={"name": "v3"})
    assert current.status_code == 200 and current.json()["version"] == 3


async def test_changes_stay_inside_the_organisation(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant, db: AsyncSession
) -> None:
    await client.patch(ORGANIZATION, headers=tenant.headers, json={"name": "改名", "record_visibility": "own"})
    row = await _organization_row(db, other_tenant.organization_id)
    assert (row.name, row.record_visibility, row.version) == ("Another organisation", "all", 1)
    theirs = (await client.get(ORGANIZATION, headers=other_tenant.headers)).json()
    assert (theirs["name"], theirs["record_visibility"]) == ("Another organisation", "all")
