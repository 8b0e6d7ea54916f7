"""API keys: shown once, hashed at rest, scoped, expiring, revocable, managed by people only."""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.models.audit import AuditEntry
from app.models.idempotency import IdempotencyRecord
from app.models.organization import ApiKey
from tests.helpers import Tenant, add_api_key, add_user, assert_problem, create, error_locs

KEYS = "/api/v1/api-keys"
ME = "/api/v1/auth/me"


async def _new_key(client: httpx.AsyncClient, tenant: Tenant, scopes: list[str], **extra: Any) -> dict[str, Any]:
    response = await client.post(KEYS, headers=tenant.headers, json={"name": "ERP sync", "scopes": scopes, **extra})
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


async def _key_row(db: AsyncSession, key_id: str) -> ApiKey:
    statement = select(ApiKey).where(ApiKey.id == uuid.UUID(key_id)).execution_options(populate_existing=True)
    return (await db.execute(statement)).scalar_one()


async def _key_count(db: AsyncSession, organization_id: str) -> int:
    statement = select(func.count()).select_from(ApiKey).where(ApiKey.organization_id == uuid.UUID(organization_id))
    return int(await db.scalar(statement) or 0)


async def test_create_shows_the_secret_once_and_stores_only_a_hash(
    client: httpx.AsyncClient, tenant: Tenant, db: AsyncSession
) -> None:
    response = await client.post(
        KEYS,
        headers=tenant.headers,
        json={"name": "ERP sync", "scopes": ["contacts:write", "contacts:read", "contacts:read"]},
    )
    assert response.status_code == 201, response.text
    created = response.json()
    secret = created["secret"]
    assert response.headers["location"] == f"{KEYS}/{created['id']}"
    assert created["name"] == "ERP sync"
    assert created["scopes"] == ["contacts:read", "contacts:write"]
    assert created["created_by_id"] == tenant.user_id
    assert created["expires_at"] is None and created["last_used_at"] is None and created["revoked_at"] is None
    assert secret.startswith(f"rpk_{created['prefix']}_") and len(secret) > 40

    got = await client.get(f"{KEYS}/{created['id']}", headers=tenant.headers)
    assert got.status_code == 200
    assert "secret" not in got.json() and secret not in got.text
    assert got.json() == {k: v for k, v in created.items() if k != "secret"}
    listed = await client.get(KEYS, headers=tenant.headers)
    assert listed.status_code == 200 and secret not in listed.text
    assert [k["id"] for k in listed.json()["items"]] == [created["id"]]
    assert all("secret" not in k for k in listed.json()["items"])

    row = await _key_row(db, created["id"])
    assert str(row.organization_id) == tenant.organization_id
    assert row.secret_hash != secret.encode() and secret.encode() not in row.secret_hash
    assert row.secret_hash == hashlib.sha256(secret.encode()).digest()
    assert row.prefix == created["prefix"]

    # The creation is audited without the secret or its hash.
    entry = (await db.execute(select(AuditEntry).where(AuditEntry.entity_id == uuid.UUID(created["id"])))).scalar_one()
    assert entry.action == "create" and entry.entity_type == "api_key"
    assert secret not in str(entry.changes) and "secret_hash" not in entry.changes


async def test_the_key_authenticates_and_me_shows_it(client: httpx.AsyncClient, tenant: Tenant) -> None:
    created = await _new_key(client, tenant, ["contacts:read", "companies:read"])
    response = await client.get(ME, headers={"X-API-Key": created["secret"]})
    assert response.status_code == 200, response.text
    me = response.json()
    assert me["kind"] == "api_key" and me["user"] is None
    assert me["scopes"] == ["companies:read", "contacts:read"]
    assert me["api_key"]["id"] == created["id"] and me["api_key"]["scopes"] == ["companies:read", "contacts:read"]
    assert "secret" not in me["api_key"]
    assert me["organization"]["id"] == tenant.organization_id


async def test_scopes_are_enforced(client: httpx.AsyncClient, tenant: Tenant, db: AsyncSession) -> None:
    contact = await create(client, "/api/v1/contacts", tenant.headers, first_name="伟")
    company = await create(client, "/api/v1/companies", tenant.headers, name="天元")
    reader = {"X-API-Key": (await _new_key(client, tenant, ["contacts:read"]))["secret"]}

    assert (await client.get("/api/v1/contacts", headers=reader)).status_code == 200
    assert (await client.get(f"/api/v1/contacts/{contact['id']}", headers=reader)).status_code == 200
    denied = assert_problem(await client.post("/api/v1/contacts", headers=reader, json={"first_name": "b"}), 403)
    assert "contacts:write" in denied["detail"]
    assert_problem(await client.get("/api/v1/companies", headers=reader), 403)
    assert_problem(await client.get(f"/api/v1/companies/{company['id']}", headers=reader), 403)
    assert_problem(await client.get("/api/v1/users", headers=reader), 403)
    assert_problem(await client.get("/api/v1/audit-log", headers=reader), 403)
    assert_problem(await client.get("/api/v1/organization", headers=reader), 403)
    assert_problem(await client.get(KEYS, headers=reader), 403)
    contacts = (await client.get("/api/v1/contacts", headers=tenant.headers)).json()["items"]
    assert [c["id"] for c in contacts] == [contact["id"]]


@pytest.mark.parametrize("scope", ["users:write", "api_keys:manage", "teams:write", "organization:write"])
async def test_scopes_reserved_for_people_cannot_be_granted(
    client: httpx.AsyncClient, tenant: Tenant, db: AsyncSession, scope: str
) -> None:
    response = await client.post(KEYS, headers=tenant.headers, json={"name": "x", "scopes": ["contacts:read", scope]})
    assert_problem(response, 422)
    assert error_locs(response) == [["body", "scopes", 1]]
    assert await _key_count(db, tenant.organization_id) == 0


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"name": "x", "scopes": ["contacts:delete"]}, ["body", "scopes", 0]),
        ({"name": "x", "scopes": ["contacts:read", "*"]}, ["body", "scopes", 1]),
        ({"name": "x", "scopes": []}, ["body", "scopes"]),
        ({"name": "x"}, ["body", "scopes"]),
        ({"name": "", "scopes": ["contacts:read"]}, ["body", "name"]),
        ({"scopes": ["contacts:read"]}, ["body", "name"]),
        ({"name": "x", "scopes": ["contacts:read"], "secret": "mine"}, ["body", "secret"]),
        ({"name": "x", "scopes": ["contacts:read"], "expires_at": "soon"}, ["body", "expires_at"]),
    ],
)
async def test_validation_errors(
    client: httpx.AsyncClient, tenant: Tenant, db: AsyncSession, body: dict[str, Any], loc: list[Any]
) -> None:
    response = await client.post(KEYS, headers=tenant.headers, json=body)
    assert_problem(response, 422)
    assert loc in error_locs(response), error_locs(response)
    assert await _key_count(db, tenant.organization_id) == 0


@pytest.mark.parametrize(
    "expires_at",
    [
        (datetime.now(UTC) - timedelta(minutes=5)).isoformat(),
        "2020-01-01T00:00:00Z",
        (datetime.now(UTC) + timedelta(days=1)).replace(tzinfo=None).isoformat(),  # no UTC offset
    ],
)
async def test_expiry_must_be_a_future_time_with_an_offset(
    client: httpx.AsyncClient, tenant: Tenant, db: AsyncSession, expires_at: str
) -> None:
    response = await client.post(
        KEYS, headers=tenant.headers, json={"name": "x", "scopes": ["contacts:read"], "expires_at": expires_at}
    )
    assert_problem(response, 422)
    assert error_locs(response) == [["body", "expires_at"]]
    assert await _key_count(db, tenant.organization_id) == 0


async def test_an_expired_key_is_401(client: httpx.AsyncClient, tenant: Tenant, db: AsyncSession) -> None:
    expires = datetime.now(UTC) + timedelta(days=30)
    created = await _new_key(client, tenant, ["contacts:read"], expires_at=expires.isoformat())
    assert datetime.fromisoformat(created["expires_at"].replace("Z", "+00:00")) == expires
    key = {"X-API-Key": created["secret"]}
    assert (await client.get("/api/v1/contacts", headers=key)).status_code == 200

    await db.execute(
        update(ApiKey)
        .where(ApiKey.id == uuid.UUID(created["id"]))
        .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
    )
    await db.commit()
    response = await client.get("/api/v1/contacts", headers=key)
    body = assert_problem(response, 401)
    assert "expired" in body["detail"]
    assert_problem(await client.get(ME, headers=key), 401)


async def test_revoke(client: httpx.AsyncClient, tenant: Tenant, db: AsyncSession) -> None:
    created = await _new_key(client, tenant, ["contacts:read"])
    survivor = await _new_key(client, tenant, ["contacts:read"])
    key = {"X-API-Key": created["secret"]}
    assert (await client.get("/api/v1/contacts", headers=key)).status_code == 200

    revoked = await client.delete(f"{KEYS}/{created['id']}", headers=tenant.headers)
    assert revoked.status_code == 200, revoked.text
    assert revoked.json()["id"] == created["id"] and revoked.json()["revoked_at"] is not None
    assert "secret" not in revoked.json()
    assert (await _key_row(db, created["id"])).revoked_at is not None

    assert_problem(await client.get("/api/v1/contacts", headers=key), 401)
    assert_problem(await client.get(ME, headers=key), 401)
    again = await client.delete(f"{KEYS}/{created['id']}", headers=tenant.headers)
    assert_problem(again, 409)
    # A revoked key is still listed (for the record), marked as revoked; other keys keep working.
    listed = {k["id"]: k for k in (await client.get(KEYS, headers=tenant.headers)).json()["items"]}
    assert listed[created["id"]]["revoked_at"] is not None and listed[survivor["id"]]["revoked_at"] is None
    assert (await client.get("/api/v1/contacts", headers={"X-API-Key": survivor["secret"]})).status_code == 200
    actions = await db.execute(
        select(AuditEntry.action).where(AuditEntry.entity_id == uuid.UUID(created["id"])).order_by(AuditEntry.id)
    )
    assert list(actions.scalars()) == ["create", "delete"]


async def test_malformed_and_unknown_keys_are_401_problems(client: httpx.AsyncClient, tenant: Tenant) -> None:
    created = await _new_key(client, tenant, ["contacts:read"])
    secret = created["secret"]
    prefix = created["prefix"]
    tampered = secret[:-1] + ("A" if secret[-1] != "A" else "B")
    bad_keys = {
        "garbage": "not-a-key",
        "no parts": "rpk",
        "wrong scheme": secret.replace("rpk_", "sk_", 1),
        "unknown prefix": f"rpk_zzzzzzzzzzzz_{secret.split('_', 2)[2]}",
        "tampered secret": tampered,
        "prefix only": f"rpk_{prefix}_",
        "a bearer token as a key": tenant.access_token,
    }
    for name, key in bad_keys.items():
        response = await client.get("/api/v1/contacts", headers={"X-API-Key": key})
        assert response.status_code == 401, name
        assert_problem(response, 401)
    assert (await client.get("/api/v1/contacts", headers={"X-API-Key": secret})).status_code == 200


async def test_an_api_key_cannot_manage_api_keys(client: httpx.AsyncClient, tenant: Tenant, db: AsyncSession) -> None:
    all_grantable = [
        "contacts:read",
        "contacts:write",
        "companies:read",
        "companies:write",
        "custom_fields:read",
        "users:read",
        "teams:read",
        "audit:read",
        "organization:read",
    ]
    created = await _new_key(client, tenant, all_grantable)
    key = {"X-API-Key": created["secret"]}
    assert_problem(await client.post(KEYS, headers=key, json={"name": "child", "scopes": ["contacts:read"]}), 403)
    assert_problem(await client.get(KEYS, headers=key), 403)
    assert_problem(await client.get(f"{KEYS}/{created['id']}", headers=key), 403)
    assert_problem(await client.delete(f"{KEYS}/{created['id']}", headers=key), 403)
    assert await _key_count(db, tenant.organization_id) == 1
    assert (await _key_row(db, created["id"])).revoked_at is None


@pytest.mark.parametrize("role", ["manager", "sales", "support", "marketing", "viewer"])
async def test_only_owners_and_admins_manage_keys(
    client: httpx.AsyncClient, tenant: Tenant, db: AsyncSession, role: str
) -> None:
    created = await _new_key(client, tenant, ["contacts:read"])
    person = await add_user(client, tenant, role)
    assert_problem(
        await client.post(KEYS, headers=person.headers, json={"name": "x", "scopes": ["contacts:read"]}), 403
    )
    assert_problem(await client.get(KEYS, headers=person.headers), 403)
    assert_problem(await client.get(f"{KEYS}/{created['id']}", headers=person.headers), 403)
    assert_problem(await client.delete(f"{KEYS}/{created['id']}", headers=person.headers), 403)
    assert await _key_count(db, tenant.organization_id) == 1
    assert (await _key_row(db, created["id"])).revoked_at is None


async def test_an_admin_manages_keys(client: httpx.AsyncClient, tenant: Tenant) -> None:
    admin = await add_user(client, tenant, "admin")
    created = await _new_key(client, admin, ["companies:read"])
    assert created["created_by_id"] == admin.user_id
    # Keys belong to the organisation: the owner sees and can revoke the admin's key.
    assert (await client.get(f"{KEYS}/{created['id']}", headers=tenant.headers)).status_code == 200
    assert (await client.delete(f"{KEYS}/{created['id']}", headers=tenant.headers)).status_code == 200


async def test_another_organisations_key_is_404(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant, db: AsyncSession
) -> None:
    theirs = await _new_key(client, other_tenant, ["contacts:read"])
    url = f"{KEYS}/{theirs['id']}"
    assert_problem(await client.get(url, headers=tenant.headers), 404)
    assert_problem(await client.delete(url, headers=tenant.headers), 404)
    assert_problem(await client.get(f"{KEYS}/{uuid.uuid4()}", headers=tenant.headers), 404)
    assert (await client.get(KEYS, headers=tenant.headers)).json()["items"] == []
    assert (await _key_row(db, theirs["id"])).revoked_at is None
    assert (await client.get("/api/v1/contacts", headers={"X-API-Key": theirs["secret"]})).status_code == 200


async def test_a_key_sees_only_its_own_organisation(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    theirs = await create(client, "/api/v1/contacts", other_tenant.headers, first_name="秘密")
    mine = await create(client, "/api/v1/contacts", tenant.headers, first_name="我的")
    key = await add_api_key(client, tenant, ["contacts:read"])
    assert [c["id"] for c in (await client.get("/api/v1/contacts", headers=key)).json()["items"]] == [mine["id"]]
    assert_problem(await client.get(f"/api/v1/contacts/{theirs['id']}", headers=key), 404)


async def test_last_used_at_is_set_after_use(client: httpx.AsyncClient, tenant: Tenant, db: AsyncSession) -> None:
    created = await _new_key(client, tenant, ["contacts:read"])
    assert (await _key_row(db, created["id"])).last_used_at is None
    before = datetime.now(UTC)
    assert (await client.get("/api/v1/contacts", headers={"X-API-Key": created["secret"]})).status_code == 200
    after = datetime.now(UTC)
    last_used = (await _key_row(db, created["id"])).last_used_at
    assert last_used is not None and before <= last_used <= after
    shown = (await client.get(f"{KEYS}/{created['id']}", headers=tenant.headers)).json()
    assert datetime.fromisoformat(shown["last_used_at"].replace("Z", "+00:00")) == last_used


async def test_api_key_pages_return_each_key_once(client: httpx.AsyncClient, tenant: Tenant) -> None:
    ids = {(await _new_key(client, tenant, ["contacts:read"]))["id"] for _ in range(5)}
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = (await client.get(KEYS, params=params, headers=tenant.headers)).json()
        seen += [k["id"] for k in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert len(seen) == len(set(seen)) and set(seen) == ids


async def test_an_idempotent_create_keeps_the_secret_off_the_database(
    client: httpx.AsyncClient, tenant: Tenant, db: AsyncSession
) -> None:
    headers = {**tenant.headers, "Idempotency-Key": str(uuid.uuid4())}
    body = {"name": "ERP sync", "scopes": ["contacts:read"]}
    first = await client.post(KEYS, headers=headers, json=body)
    assert first.status_code == 201, first.text
    secret = first.json()["secret"]
    replay = await client.post(KEYS, headers=headers, json=body)
    assert replay.status_code == 201
    assert replay.json()["id"] == first.json()["id"]
    assert await _key_count(db, tenant.organization_id) == 1
    # The secret is stored only as a hash: not in the stored first reply either.
    stored = await db.execute(
        select(IdempotencyRecord.response_body).where(IdempotencyRecord.scope == f"user:{tenant.user_id}")
    )
    bodies = [row for row in stored.scalars() if row is not None]
    assert bodies, "the first reply was not stored"
    assert all(secret.encode() not in stored_body for stored_body in bodies)
