"""Users: creation by role, sign-in, roles and ownership rules, activation, paging, tenancy, audit."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from app.models.audit import AuditEntry
from app.models.organization import User
from tests.helpers import (
    PASSWORD,
    Tenant,
    add_user,
    assert_problem,
    bearer,
    error_locs,
    login,
    unique_email,
)

USERS = "/api/v1/users"
ROLES = ["owner", "admin", "manager", "sales", "support", "marketing", "viewer"]


def _body(role: str = "sales", **overrides: Any) -> dict[str, Any]:
    return {"email": unique_email(role), "full_name": "李娜", "role": role, "password": PASSWORD, **overrides}


async def _user_row(db: AsyncSession, user_id: str) -> User:
    statement = select(User).where(User.id == uuid.UUID(user_id)).execution_options(populate_existing=True)
    return (await db.execute(statement)).scalar_one()


async def _all_pages(client: httpx.AsyncClient, headers: dict[str, str], **params: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        query = dict(params)
        if cursor:
            query["cursor"] = cursor
        response = await client.get(USERS, params=query, headers=headers)
        assert response.status_code == 200, response.text
        page = response.json()
        items += page["items"]
        cursor = page["next_cursor"]
        if not cursor:
            return items


@pytest.mark.parametrize("creator_role", ["owner", "admin"])
@pytest.mark.parametrize("role", ["admin", "manager", "sales", "support", "marketing", "viewer"])
async def test_owner_and_admin_create_users_who_can_sign_in(
    client: httpx.AsyncClient, tenant: Tenant, db: AsyncSession, creator_role: str, role: str
) -> None:
    creator = tenant if creator_role == "owner" else await add_user(client, tenant, "admin")
    email = unique_email(role)
    response = await client.post(
        USERS,
        headers=creator.headers,
        json={"email": email, "full_name": " 李娜 ", "role": role, "password": PASSWORD},
    )
    assert response.status_code == 201, response.text
    user = response.json()
    assert response.headers["location"] == f"{USERS}/{user['id']}"
    assert response.headers["etag"] == 'W/"1"'
    assert (user["email"], user["full_name"], user["role"]) == (email, "李娜", role)
    assert user["is_active"] is True and user["deactivated_at"] is None and user["version"] == 1
    assert "password" not in user and "password_hash" not in user and "organization_id" not in user

    row = await _user_row(db, user["id"])
    assert str(row.organization_id) == tenant.organization_id
    assert row.role == role and row.password_hash != PASSWORD and PASSWORD not in row.password_hash

    tokens = await login(client, email)
    me = await client.get("/api/v1/auth/me", headers=bearer(tokens["access_token"]))
    assert me.status_code == 200
    assert me.json()["kind"] == "user"
    assert me.json()["user"]["id"] == user["id"] and me.json()["user"]["role"] == role
    assert me.json()["organization"]["id"] == tenant.organization_id


async def test_get_returns_the_user_with_an_etag(client: httpx.AsyncClient, tenant: Tenant) -> None:
    sales = await add_user(client, tenant, "sales")
    response = await client.get(f"{USERS}/{sales.user_id}", headers=tenant.headers)
    assert response.status_code == 200
    assert response.headers["etag"] == 'W/"1"'
    assert response.json()["id"] == sales.user_id and response.json()["email"] == sales.email
    # Everyone in the organisation may read its users.
    viewer = await add_user(client, tenant, "viewer")
    assert (await client.get(f"{USERS}/{sales.user_id}", headers=viewer.headers)).status_code == 200
    assert_problem(await client.get(f"{USERS}/{uuid.uuid4()}", headers=tenant.headers), 404)


async def test_email_is_normalised_to_lower_case(client: httpx.AsyncClient, tenant: Tenant, db: AsyncSession) -> None:
    local = uuid.uuid4().hex[:10]
    response = await client.post(USERS, headers=tenant.headers, json=_body(email=f"  Li.Na.{local}@Example.COM "))
    assert response.status_code == 201, response.text
    assert response.json()["email"] == f"li.na.{local}@example.com"
    assert (await _user_row(db, response.json()["id"])).email == f"li.na.{local}@example.com"
    # Sign-in works whatever the case the person types.
    await login(client, f"LI.NA.{local}@EXAMPLE.COM")


async def test_email_is_unique_across_all_organisations(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant, db: AsyncSession
) -> None:
    sales = await add_user(client, tenant, "sales")
    same_org = await client.post(USERS, headers=tenant.headers, json=_body(email=sales.email.upper()))
    assert_problem(same_org, 409)
    # The other organisation's owner, and a user the other organisation made.
    assert_problem(await client.post(USERS, headers=tenant.headers, json=_body(email=other_tenant.email)), 409)
    theirs = await add_user(client, other_tenant, "viewer")
    assert_problem(
        await client.post(USERS, headers=tenant.headers, json=_body(email=theirs.email.replace("viewer", "VIEWER"))),
        409,
    )
    assert_problem(await client.post(USERS, headers=other_tenant.headers, json=_body(email=sales.email)), 409)
    for email in (sales.email, other_tenant.email, theirs.email):
        assert await db.scalar(select(func.count()).select_from(User).where(User.email == email)) == 1


@pytest.mark.parametrize("password", ["", "short", "123456789"])
async def test_password_policy(client: httpx.AsyncClient, tenant: Tenant, db: AsyncSession, password: str) -> None:
    body = _body(password=password)
    response = await client.post(USERS, headers=tenant.headers, json=body)
    assert_problem(response, 422)
    assert error_locs(response) == [["body", "password"]]
    assert await db.scalar(select(func.count()).select_from(User).where(User.email == body["email"])) == 0


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"role": "superuser"}, ["body", "role"]),
        ({"role": "Owner"}, ["body", "role"]),
        ({"role": None}, ["body", "role"]),
        ({"email": "not-an-email"}, ["body", "email"]),
        ({"full_name": ""}, ["body", "full_name"]),
        ({"is_active": False}, ["body", "is_active"]),
        ({"organization_id": str(uuid.uuid4())}, ["body", "organization_id"]),
    ],
)
async def test_validation_errors(
    client: httpx.AsyncClient, tenant: Tenant, body: dict[str, Any], loc: list[Any]
) -> None:
    response = await client.post(USERS, headers=tenant.headers, json=_body(**body))
    assert_problem(response, 422)
    assert loc in error_locs(response), error_locs(response)


async def test_missing_role_is_422(client: httpx.AsyncClient, tenant: Tenant) -> None:
    body = _body()
    del body["role"]
    response = await client.post(USERS, headers=tenant.headers, json=body)
    assert error_locs(response) == [["body", "role"]]


async def test_only_an_owner_can_grant_the_owner_role(
    client: httpx.AsyncClient, tenant: Tenant, db: AsyncSession
) -> None:
    admin = await add_user(client, tenant, "admin")
    refused = _body("owner")
    assert_problem(await client.post(USERS, headers=admin.headers, json=refused), 403)
    assert await db.scalar(select(func.count()).select_from(User).where(User.email == refused["email"])) == 0

    sales = await add_user(client, tenant, "sales")
    assert_problem(await client.patch(f"{USERS}/{sales.user_id}", headers=admin.headers, json={"role": "owner"}), 403)
    assert (await _user_row(db, sales.user_id)).role == "sales"

    granted = await client.post(USERS, headers=tenant.headers, json=_body("owner"))
    assert granted.status_code == 201 and granted.json()["role"] == "owner"
    promoted = await client.patch(f"{USERS}/{sales.user_id}", headers=tenant.headers, json={"role": "owner"})
    assert promoted.status_code == 200 and promoted.json()["role"] == "owner"


@pytest.mark.parametrize("role", ["manager", "sales", "support", "marketing", "viewer"])
async def test_other_roles_cannot_create_or_change_users(
    client: httpx.AsyncClient, tenant: Tenant, db: AsyncSession, role: str
) -> None:
    caller = await add_user(client, tenant, role)
    other = await add_user(client, tenant, "viewer")
    body = _body("viewer")
    assert_problem(await client.post(USERS, headers=caller.headers, json=body), 403)
    assert await db.scalar(select(func.count()).select_from(User).where(User.email == body["email"])) == 0
    url = f"{USERS}/{other.user_id}"
    assert_problem(await client.patch(url, headers=caller.headers, json={"full_name": "x"}), 403)
    assert_problem(await client.post(f"{url}/deactivate", headers=caller.headers), 403)
    assert_problem(await client.post(f"{url}/activate", headers=caller.headers), 403)
    row = await _user_row(db, other.user_id)
    assert (row.full_name, row.is_active, row.version) == ("李娜", True, 1)
    # Reading is allowed to every role.
    assert (await client.get(USERS, headers=caller.headers)).status_code == 200


async def test_patch_role_and_full_name_with_if_match(
    client: httpx.AsyncClient, tenant: Tenant, db: AsyncSession
) -> None:
    sales = await add_user(client, tenant, "sales")
    url = f"{USERS}/{sales.user_id}"
    response = await client.patch(
        url, headers={**tenant.headers, "If-Match": 'W/"1"'}, json={"role": "manager", "full_name": "李娜娜"}
    )
    assert response.status_code == 200, response.text
    assert (response.json()["role"], response.json()["full_name"]) == ("manager", "李娜娜")
    assert response.json()["version"] == 2 and response.headers["etag"] == 'W/"2"'
    row = await _user_row(db, sales.user_id)
    assert (row.role, row.full_name, row.version) == ("manager", "李娜娜", 2)
    # The new role applies to the user's existing token at once.
    me = (await client.get("/api/v1/auth/me", headers=sales.headers)).json()
    assert "teams:write" in me["scopes"]

    stale = await client.patch(url, headers={**tenant.headers, "If-Match": 'W/"1"'}, json={"role": "viewer"})
    assert_problem(stale, 412)
    stale_name = await client.patch(url, headers={**tenant.headers, "If-Match": 'W/"1"'}, json={"full_name": "x"})
    assert_problem(stale_name, 412)
    row = await _user_row(db, sales.user_id)
    assert (row.role, row.full_name, row.version) == ("manager", "李娜娜", 2)
    updates = await db.scalar(
        select(func.count()).where(AuditEntry.entity_id == uuid.UUID(sales.user_id), AuditEntry.action == "update")
    )
    assert updates == 1

    current = await client.patch(url, headers={**tenant.headers, "If-Match": 'W/"2"'}, json={"full_name": "李娜"})
    assert current.status_code == 200 and current.json()["version"] == 3


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"role": None}, ["body", "role"]),
        ({"full_name": None}, ["body", "full_name"]),
        ({"full_name": ""}, ["body", "full_name"]),
        ({"role": "god"}, ["body", "role"]),
        ({"email": "new@example.com"}, ["body", "email"]),
        ({"is_active": False}, ["body", "is_active"]),
    ],
)
async def test_patch_validation(
    client: httpx.AsyncClient, tenant: Tenant, db: AsyncSession, body: dict[str, Any], loc: list[Any]
) -> None:
    sales = await add_user(client, tenant, "sales")
    response = await client.patch(f"{USERS}/{sales.user_id}", headers=tenant.headers, json=body)
    assert_problem(response, 422)
    assert loc in error_locs(response), error_locs(response)
    row = await _user_row(db, sales.user_id)
    assert (row.role, row.full_name, row.email, row.is_active, row.version) == (
        "sales",
        "李娜",
        sales.email,
        True,
        1,
    )


async def test_the_last_active_owner_cannot_be_demoted(
    client: httpx.AsyncClient, tenant: Tenant, db: AsyncSession
) -> None:
    url = f"{USERS}/{tenant.user_id}"
    assert_problem(await client.patch(url, headers=tenant.headers, json={"role": "admin"}), 409)
    assert (await _user_row(db, tenant.user_id)).role == "owner"

    # With a second owner, one may step down; then the other is the last one.
    second = await add_user(client, tenant, "owner")
    demoted = await client.patch(url, headers=tenant.headers, json={"role": "admin"})
    assert demoted.status_code == 200 and demoted.json()["role"] == "admin"
    assert_problem(
        await client.patch(f"{USERS}/{second.user_id}", headers=second.headers, json={"role": "manager"}), 409
    )
    assert (await _user_row(db, second.user_id)).role == "owner"


async def test_a_deactivated_owner_does_not_count_as_an_owner(
    client: httpx.AsyncClient, tenant: Tenant, db: AsyncSession
) -> None:
    second = await add_user(client, tenant, "owner")
    response = await client.post(f"{USERS}/{second.user_id}/deactivate", headers=tenant.headers)
    assert response.status_code == 200 and response.json()["is_active"] is False
    assert_problem(await client.patch(f"{USERS}/{tenant.user_id}", headers=tenant.headers, json={"role": "admin"}), 409)
    assert (await _user_row(db, tenant.user_id)).role == "owner"


async def test_you_cannot_deactivate_yourself(client: httpx.AsyncClient, tenant: Tenant, db: AsyncSession) -> None:
    # The only owner: both "yourself" and "last owner" forbid it.
    assert_problem(await client.post(f"{USERS}/{tenant.user_id}/deactivate", headers=tenant.headers), 409)
    # An owner among several.
    await add_user(client, tenant, "owner")
    assert_problem(await client.post(f"{USERS}/{tenant.user_id}/deactivate", headers=tenant.headers), 409)
    # An admin.
    admin = await add_user(client, tenant, "admin")
    assert_problem(await client.post(f"{USERS}/{admin.user_id}/deactivate", headers=admin.headers), 409)
    assert (await _user_row(db, tenant.user_id)).is_active is True
    assert (await _user_row(db, admin.user_id)).is_active is True
    assert (await client.get("/api/v1/auth/me", headers=admin.headers)).status_code == 200


async def test_an_admin_cannot_change_an_owner(client: httpx.AsyncClient, tenant: Tenant, db: AsyncSession) -> None:
    await add_user(client, tenant, "owner")  # so no "last owner" rule is in play
    admin = await add_user(client, tenant, "admin")
    url = f"{USERS}/{tenant.user_id}"
    assert_problem(await client.post(f"{url}/deactivate", headers=admin.headers), 403)
    assert_problem(await client.patch(url, headers=admin.headers, json={"role": "viewer"}), 403)
    row = await _user_row(db, tenant.user_id)
    assert (row.is_active, row.role, row.version) == (True, "owner", 1)
    assert (await client.get("/api/v1/auth/me", headers=tenant.headers)).status_code == 200


async def test_an_admin_can_deactivate_other_non_owners(client: httpx.AsyncClient, tenant: Tenant) -> None:
    admin = await add_user(client, tenant, "admin")
    other_admin = await add_user(client, tenant, "admin")
    response = await client.post(f"{USERS}/{other_admin.user_id}/deactivate", headers=admin.headers)
    assert response.status_code == 200 and response.json()["is_active"] is False
    assert_problem(await client.get("/api/v1/auth/me", headers=other_admin.headers), 401)


async def test_deactivate_and_activate_round_trip(client: httpx.AsyncClient, tenant: Tenant, db: AsyncSession) -> None:
    sales = await add_user(client, tenant, "sales")
    url = f"{USERS}/{sales.user_id}"

    deactivated = await client.post(f"{url}/deactivate", headers={**tenant.headers, "If-Match": 'W/"1"'})
    assert deactivated.status_code == 200, deactivated.text
    body = deactivated.json()
    assert body["is_active"] is False and body["deactivated_at"] is not None and body["version"] == 2
    assert deactivated.headers["etag"] == 'W/"2"'
    row = await _user_row(db, sales.user_id)
    assert row.is_active is False and row.deactivated_at is not None
    assert_problem(await client.get("/api/v1/auth/me", headers=sales.headers), 401)
    assert_problem(await client.post("/api/v1/auth/token", data={"username": sales.email, "password": PASSWORD}), 401)

    # Deactivating again changes nothing.
    again = await client.post(f"{url}/deactivate", headers=tenant.headers)
    assert again.status_code == 200 and again.json()["version"] == 2

    assert_problem(await client.post(f"{url}/activate", headers={**tenant.headers, "If-Match": 'W/"1"'}), 412)
    assert (await _user_row(db, sales.user_id)).is_active is False

    activated = await client.post(f"{url}/activate", headers={**tenant.headers, "If-Match": 'W/"2"'})
    assert activated.status_code == 200, activated.text
    assert activated.json()["is_active"] is True and activated.json()["deactivated_at"] is None
    assert activated.json()["version"] == 3 and activated.headers["etag"] == 'W/"3"'
    row = await _user_row(db, sales.user_id)
    assert row.is_active is True and row.deactivated_at is None

    tokens = await login(client, sales.email)
    assert (await client.get("/api/v1/auth/me", headers=bearer(tokens["access_token"]))).status_code == 200
    # The sessions revoked by the deactivation stay revoked.
    assert_problem(await client.post("/api/v1/auth/refresh", json={"refresh_token": sales.refresh_token}), 401)

    actions = (
        await client.get("/api/v1/audit-log", params={"entity_id": sales.user_id}, headers=tenant.headers)
    ).json()["items"]
    assert [(a["action"], a["changes"].get("is_active")) for a in actions] == [
        ("update", {"before": False, "after": True}),
        ("update", {"before": True, "after": False}),
        ("create", {"before": None, "after": True}),
    ]


async def test_stale_if_match_on_deactivate_writes_nothing(
    client: httpx.AsyncClient, tenant: Tenant, db: AsyncSession
) -> None:
    sales = await add_user(client, tenant, "sales")
    url = f"{USERS}/{sales.user_id}"
    await client.patch(url, headers=tenant.headers, json={"full_name": "changed"})
    assert_problem(await client.post(f"{url}/deactivate", headers={**tenant.headers, "If-Match": 'W/"1"'}), 412)
    row = await _user_row(db, sales.user_id)
    assert (row.is_active, row.version) == (True, 2)
    assert (await client.get("/api/v1/auth/me", headers=sales.headers)).status_code == 200


async def test_list_filters_by_role_and_activity(client: httpx.AsyncClient, tenant: Tenant) -> None:
    sales_a = await add_user(client, tenant, "sales")
    sales_b = await add_user(client, tenant, "sales")
    viewer = await add_user(client, tenant, "viewer")
    await client.post(f"{USERS}/{sales_b.user_id}/deactivate", headers=tenant.headers)

    async def ids(**params: Any) -> set[str]:
        response = await client.get(USERS, params=params, headers=tenant.headers)
        assert response.status_code == 200, response.text
        return {u["id"] for u in response.json()["items"]}

    everyone = {tenant.user_id, sales_a.user_id, sales_b.user_id, viewer.user_id}
    assert await ids() == everyone
    assert await ids(role="sales") == {sales_a.user_id, sales_b.user_id}
    assert await ids(role="owner") == {tenant.user_id}
    assert await ids(role="admin") == set()
    assert await ids(is_active="false") == {sales_b.user_id}
    assert await ids(is_active="true") == everyone - {sales_b.user_id}
    assert await ids(role="sales", is_active="true") == {sales_a.user_id}
    assert error_locs(await client.get(USERS, params={"role": "boss"}, headers=tenant.headers)) == [["query", "role"]]
    assert error_locs(await client.get(USERS, params={"is_active": "maybe"}, headers=tenant.headers)) == [
        ["query", "is_active"]
    ]


async def test_paging_returns_every_user_once(client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant) -> None:
    created = {tenant.user_id}
    for index in range(6):
        response = await client.post(USERS, headers=tenant.headers, json=_body(ROLES[1 + index % 6]))
        created.add(response.json()["id"])
    await add_user(client, other_tenant, "sales")
    full = await _all_pages(client, tenant.headers, limit=500)
    assert {u["id"] for u in full} == created
    for limit in (1, 2, 3, 7):
        paged = await _all_pages(client, tenant.headers, limit=limit)
        assert [u["id"] for u in paged] == [u["id"] for u in full], limit
    first = (await client.get(USERS, params={"limit": 7}, headers=tenant.headers)).json()
    assert len(first["items"]) == 7 and first["next_cursor"] is None
    filtered = await _all_pages(client, tenant.headers, limit=1, role="sales")
    assert [u["role"] for u in filtered] == ["sales"]


async def test_another_organisations_users_are_404(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant, db: AsyncSession
) -> None:
    theirs = await add_user(client, other_tenant, "sales")
    for user_id in (theirs.user_id, other_tenant.user_id):
        url = f"{USERS}/{user_id}"
        for method, path, body in [
            ("GET", url, None),
            ("PATCH", url, {"full_name": "hijacked"}),
            ("PATCH", url, {"role": "viewer"}),
            ("POST", f"{url}/deactivate", None),
            ("POST", f"{url}/activate", None),
        ]:
            assert_problem(await client.request(method, path, headers=tenant.headers, json=body), 404)
    row = await _user_row(db, theirs.user_id)
    assert (row.full_name, row.role, row.is_active, row.version) == ("李娜", "sales", True, 1)
    listed = (await client.get(USERS, params={"limit": 500}, headers=tenant.headers)).json()["items"]
    assert theirs.user_id not in {u["id"] for u in listed}
    assert other_tenant.user_id not in {u["id"] for u in listed}


async def test_audit_rows_record_create_and_update(client: httpx.AsyncClient, tenant: Tenant) -> None:
    email = unique_email("audited")
    created = await client.post(
        USERS,
        headers={**tenant.headers, "X-Request-ID": "user-create-1"},
        json={"email": email, "full_name": "李娜", "role": "sales", "password": PASSWORD},
    )
    user_id = created.json()["id"]
    await client.patch(f"{USERS}/{user_id}", headers=tenant.headers, json={"role": "manager", "full_name": "李娜娜"})
    # A PATCH that changes nothing writes no audit row.
    await client.patch(f"{USERS}/{user_id}", headers=tenant.headers, json={"role": "manager"})

    response = await client.get("/api/v1/audit-log", params={"entity_type": "user"}, headers=tenant.headers)
    assert response.status_code == 200
    entries = [e for e in response.json()["items"] if e["entity_id"] == user_id]
    assert [e["action"] for e in entries] == ["update", "create"]
    update, create_ = entries
    assert update["changes"] == {
        "full_name": {"before": "李娜", "after": "李娜娜"},
        "role": {"before": "sales", "after": "manager"},
    }
    assert create_["changes"]["email"] == {"before": None, "after": email}
    assert create_["changes"]["role"] == {"before": None, "after": "sales"}
    assert "password_hash" not in create_["changes"] and "password" not in create_["changes"]
    assert create_["request_id"] == "user-create-1"
    for entry in entries:
        assert entry["entity_type"] == "user"
        assert (entry["actor_type"], entry["actor_id"]) == ("user", tenant.user_id)


async def _race(
    app: Any,
    db: AsyncSession,
    *requests: Awaitable[httpx.Response],
    while_held: Callable[[], Awaitable[Any]] | None = None,
) -> list[httpx.Response]:
    """Runs the requests so that each has read the state before any commits.

    The audit row is the last thing each write inserts; holding a lock on the audit table lets
    every request run its checks and then wait, and releasing it lets them all commit. A service
    that serialises the check properly makes the later request wait earlier (or fail), which is
    fine: the watcher gives up waiting after two seconds. `while_held` runs while the writes
    wait to commit, as another client's request would.
    """
    await db.execute(text("LOCK TABLE audit_log IN EXCLUSIVE MODE"))
    tasks = [asyncio.ensure_future(request) for request in requests]
    async with app.state.session_factory() as watcher:
        for _ in range(100):
            await asyncio.sleep(0.02)
            waiting = await watcher.scalar(
                text(
                    "SELECT count(*) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND wait_event_type = 'Lock'"
                )
            )
            await watcher.rollback()
            if waiting >= len(tasks) or all(task.done() for task in tasks):
                break
    try:
        if while_held is not None:
            await while_held()
    finally:
        await db.commit()
    return list(await asyncio.gather(*tasks))


async def _owner_count(db: AsyncSession, organization_id: str, *, active_only: bool) -> int:
    statement = (
        select(func.count())
        .select_from(User)
        .where(User.organization_id == uuid.UUID(organization_id), User.role == "owner")
    )
    if active_only:
        statement = statement.where(User.is_active.is_(True))
    return int(await db.scalar(statement) or 0)


async def test_two_owners_demoting_each_other_at_once_leave_an_owner(
    app: Any, client: httpx.AsyncClient, tenant: Tenant, db: AsyncSession
) -> None:
    second = await add_user(client, tenant, "owner")
    replies = await _race(
        app,
        db,
        client.patch(f"{USERS}/{second.user_id}", headers=tenant.headers, json={"role": "admin"}),
        client.patch(f"{USERS}/{tenant.user_id}", headers=second.headers, json={"role": "admin"}),
    )
    assert sorted(r.status_code for r in replies) == [200, 409], [r.text for r in replies]
    assert await _owner_count(db, tenant.organization_id, active_only=False) == 1


async def test_two_owners_deactivating_each_other_at_once_leave_an_owner(
    app: Any, client: httpx.AsyncClient, tenant: Tenant, db: AsyncSession
) -> None:
    second = await add_user(client, tenant, "owner")
    replies = await _race(
        app,
        db,
        client.post(f"{USERS}/{second.user_id}/deactivate", headers=tenant.headers),
        client.post(f"{USERS}/{tenant.user_id}/deactivate", headers=second.headers),
    )
    # One wins; the other is refused (409), or no longer authenticates once the winner committed (401).
    assert sorted(r.status_code for r in replies) in ([200, 401], [200, 409]), [r.text for r in replies]
    assert await _owner_count(db, tenant.organization_id, active_only=True) == 1


async def test_a_request_made_while_a_deactivation_commits_does_not_outlive_it(
    app: Any, client: httpx.AsyncClient, tenant: Tenant, db: AsyncSession
) -> None:
    sales = await add_user(client, tenant, "sales")

    async def use_the_token() -> None:
        await client.get("/api/v1/auth/me", headers=sales.headers)

    [reply] = await _race(
        app,
        db,
        client.post(f"{USERS}/{sales.user_id}/deactivate", headers=tenant.headers),
        while_held=use_the_token,
    )
    assert reply.status_code == 200 and reply.json()["is_active"] is False
    # Once the deactivation is committed, the user is out, whatever was read meanwhile.
    assert_problem(await client.get("/api/v1/auth/me", headers=sales.headers), 401)
    assert_problem(await client.get("/api/v1/contacts", headers=sales.headers), 401)


async def test_a_request_made_while_a_demotion_commits_does_not_keep_the_old_role(
    app: Any, client: httpx.AsyncClient, tenant: Tenant, db: AsyncSession
) -> None:
    admin = await add_user(client, tenant, "admin")

    async def use_the_token() -> None:
        await client.get("/api/v1/auth/me", headers=admin.headers)

    [reply] = await _race(
        app,
        db,
        client.patch(f"{USERS}/{admin.user_id}", headers=tenant.headers, json={"role": "viewer"}),
        while_held=use_the_token,
    )
    assert reply.status_code == 200 and reply.json()["role"] == "viewer"
    me = (await client.get("/api/v1/auth/me", headers=admin.headers)).json()
    assert "users:write" not in me["scopes"], me["scopes"]
    body = _body("sales")
    assert_problem(await client.post(USERS, headers=admin.headers, json=body), 403)
    assert await db.scalar(select(func.count()).select_from(User).where(User.email == body["email"])) == 0


async def test_idempotent_replay_creates_one_user(client: httpx.AsyncClient, tenant: Tenant, db: AsyncSession) -> None:
    headers = {**tenant.headers, "Idempotency-Key": str(uuid.uuid4())}
    body = _body("sales")
    first = await client.post(USERS, headers=headers, json=body)
    second = await client.post(USERS, headers=headers, json=body)
    assert first.status_code == second.status_code == 201
    assert second.json() == first.json() and second.headers["idempotent-replayed"] == "true"
    assert second.headers["location"] == first.headers["location"]
    assert await db.scalar(select(func.count()).select_from(User).where(User.email == body["email"])) == 1
    other = await client.post(USERS, headers=headers, json=_body("sales"))
    assert_problem(other, 422)
    assert error_locs(other) == [["header", "Idempotency-Key"]]


async def test_only_an_owner_changes_an_owner(client: httpx.AsyncClient, tenant: Tenant) -> None:
    admin = await add_user(client, tenant, "admin")
    renamed = await client.patch(f"{USERS}/{tenant.user_id}", headers=admin.headers, json={"full_name": "改名"})
    assert_problem(renamed, 403)
    itself = await client.patch(f"{USERS}/{tenant.user_id}", headers=tenant.headers, json={"full_name": "王芳芳"})
    assert itself.status_code == 200
    assert itself.json()["full_name"] == "王芳芳"
