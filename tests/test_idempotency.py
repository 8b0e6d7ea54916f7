"""Idempotency-Key on POST: replays, mismatches, scoping and concurrent duplicates."""

from __future__ import annotations

import asyncio
import uuid

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models.contact import Contact
from app.models.idempotency import IdempotencyRecord
from tests.helpers import Tenant, add_user, assert_problem, error_locs

CONTACTS = "/api/v1/contacts"


async def _count(db: AsyncSession, tenant: Tenant, first_name: str) -> int:
    statement = select(func.count()).where(
        Contact.organization_id == uuid.UUID(tenant.organization_id), Contact.first_name == first_name
    )
    return int(await db.scalar(statement) or 0)


async def test_a_replay_returns_the_first_reply(client: httpx.AsyncClient, tenant: Tenant, db: AsyncSession) -> None:
    headers = {**tenant.headers, "Idempotency-Key": str(uuid.uuid4())}
    first = await client.post(CONTACTS, headers=headers, json={"first_name": "once"})
    second = await client.post(CONTACTS, headers=headers, json={"first_name": "once"})
    assert first.status_code == second.status_code == 201
    assert second.json() == first.json()
    assert second.headers["location"] == first.headers["location"]
    assert second.headers["etag"] == first.headers["etag"]
    assert second.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    assert await _count(db, tenant, "once") == 1


async def test_the_same_key_with_another_body_is_422(
    client: httpx.AsyncClient, tenant: Tenant, db: AsyncSession
) -> None:
    headers = {**tenant.headers, "Idempotency-Key": str(uuid.uuid4())}
    assert (await client.post(CONTACTS, headers=headers, json={"first_name": "first"})).status_code == 201
    other = await client.post(CONTACTS, headers=headers, json={"first_name": "second"})
    assert error_locs(other) == [["header", "Idempotency-Key"]]
    other_path = await client.post("/api/v1/companies", headers=headers, json={"name": "first"})
    assert_problem(other_path, 422)
    assert await _count(db, tenant, "second") == 0


async def test_concurrent_duplicates_create_exactly_one_record(
    client: httpx.AsyncClient, tenant: Tenant, db: AsyncSession
) -> None:
    headers = {**tenant.headers, "Idempotency-Key": str(uuid.uuid4())}
    replies = await asyncio.gather(
        *(client.post(CONTACTS, headers=headers, json={"first_name": "raced"}) for _ in range(8))
    )
    assert {reply.status_code for reply in replies} == {201}
    assert len({reply.json()["id"] for reply in replies}) == 1
    assert sum(reply.headers.get("idempotent-replayed") == "true" for reply in replies) == 7
    assert await _count(db, tenant, "raced") == 1


async def test_keys_belong_to_their_caller(client: httpx.AsyncClient, tenant: Tenant, db: AsyncSession) -> None:
    key = str(uuid.uuid4())
    colleague = await add_user(client, tenant, "sales")
    mine = await client.post(CONTACTS, headers={**tenant.headers, "Idempotency-Key": key}, json={"first_name": "k"})
    theirs = await client.post(
        CONTACTS, headers={**colleague.headers, "Idempotency-Key": key}, json={"first_name": "k"}
    )
    assert mine.status_code == theirs.status_code == 201
    assert mine.json()["id"] != theirs.json()["id"]
    assert await _count(db, tenant, "k") == 2


async def test_a_failed_request_does_not_use_up_the_key(
    client: httpx.AsyncClient, tenant: Tenant, db: AsyncSession
) -> None:
    headers = {**tenant.headers, "Idempotency-Key": str(uuid.uuid4())}
    invalid = await client.post(CONTACTS, headers=headers, json={"first_name": "x", "email": "bad"})
    assert_problem(invalid, 422)
    conflict_key = {**tenant.headers, "Idempotency-Key": str(uuid.uuid4())}
    await client.post(CONTACTS, headers=tenant.headers, json={"first_name": "x", "external_id": "E1"})
    assert_problem(
        await client.post(CONTACTS, headers=conflict_key, json={"first_name": "y", "external_id": "E1"}), 409
    )
    stored = await db.scalar(select(func.count()).where(IdempotencyRecord.key == headers["Idempotency-Key"]))
    assert stored == 0
    # The 409 stored nothing, so the corrected request under the same key is a first request.
    retried = await client.post(CONTACTS, headers=conflict_key, json={"first_name": "y", "external_id": "E2"})
    assert retried.status_code == 201
    fresh = await client.post(CONTACTS, headers=headers, json={"first_name": "x", "email": "x@example.com"})
    assert fresh.status_code == 201


async def test_an_expired_key_is_free_again(client: httpx.AsyncClient, tenant: Tenant, db: AsyncSession) -> None:
    key = str(uuid.uuid4())
    headers = {**tenant.headers, "Idempotency-Key": key}
    first = await client.post(CONTACTS, headers=headers, json={"first_name": "expiring"})
    record = (await db.execute(select(IdempotencyRecord).where(IdempotencyRecord.key == key))).scalar_one()
    record.expires_at = record.created_at
    await db.commit()
    again = await client.post(CONTACTS, headers=headers, json={"first_name": "expiring"})
    assert again.status_code == 201
    assert again.json()["id"] != first.json()["id"]
    assert "idempotent-replayed" not in again.headers


async def test_token_issuing_routes_store_no_replies(client: httpx.AsyncClient, db: AsyncSession) -> None:
    key = str(uuid.uuid4())
    body = {"organization_name": "x", "email": f"{key}@example.com", "password": "a long passphrase", "full_name": "x"}
    first = await client.post("/api/v1/auth/signup", headers={"Idempotency-Key": key}, json=body)
    second = await client.post("/api/v1/auth/signup", headers={"Idempotency-Key": key}, json=body)
    assert first.status_code == 201
    assert_problem(second, 409)  # not a replay: replies with tokens are never stored
    assert await db.scalar(select(func.count()).where(IdempotencyRecord.key == key)) == 0


async def test_key_length_is_checked(client: httpx.AsyncClient, tenant: Tenant) -> None:
    response = await client.post(
        CONTACTS, headers={**tenant.headers, "Idempotency-Key": "k" * 256}, json={"first_name": "x"}
    )
    assert error_locs(response) == [["header", "Idempotency-Key"]]
