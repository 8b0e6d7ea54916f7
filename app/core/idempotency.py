"""`Idempotency-Key` on POST: the first reply is stored in the same transaction as the write.

The claim is an `INSERT … ON CONFLICT` on `(scope, key)`. A concurrent duplicate blocks on the
unique index until the first request's transaction ends: if it committed, the duplicate finds
its stored reply and replays it; if it rolled back, the duplicate proceeds as the first. So
exactly one record is created, and a failed request leaves no key behind.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.db import sqlstate
from app.core.errors import Conflict, FieldError, ValidationFailed
from app.core.ids import new_id
from app.models.base import utcnow
from app.models.idempotency import IdempotencyRecord

LOCK_NOT_AVAILABLE = "55P03"
REPLAY_HEADERS = ("content-type", "location", "etag")


@dataclass(frozen=True, slots=True)
class Claim:
    record_id: uuid.UUID


@dataclass(frozen=True, slots=True)
class StoredReply:
    status_code: int
    headers: dict[str, str]
    body: bytes


def fingerprint(method: str, path: str, query: str, body: bytes) -> bytes:
    digest = hashlib.sha256()
    for part in (method.encode(), path.encode(), query.encode(), body):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.digest()


async def claim(
    session: AsyncSession,
    *,
    scope: str,
    key: str,
    organization_id: uuid.UUID | None,
    request_fingerprint: bytes,
    ttl_seconds: int,
    lock_timeout_ms: int,
) -> Claim | StoredReply:
    now = utcnow()
    values = {
        "id": new_id(),
        "organization_id": organization_id,
        "scope": scope,
        "key": key,
        "fingerprint": request_fingerprint,
        "created_at": now,
        "expires_at": now + timedelta(seconds=ttl_seconds),
    }
    statement = (
        insert(IdempotencyRecord)
        .values(**values)
        .on_conflict_do_update(
            index_elements=[IdempotencyRecord.scope, IdempotencyRecord.key],
            # An expired key is free again: take it over as if it were new.
            set_={
                **values,
                "response_status": None,
                "response_headers": None,
                "response_body": None,
            },
            where=IdempotencyRecord.expires_at <= now,
        )
        .returning(IdempotencyRecord.id)
    )
    await session.execute(text(f"SET LOCAL lock_timeout = {int(lock_timeout_ms)}"))
    try:
        claimed = (await session.execute(statement)).scalar_one_or_none()
    except DBAPIError as exc:
        if sqlstate(exc) == LOCK_NOT_AVAILABLE:
            raise Conflict("A request with this Idempotency-Key is still in progress; retry later") from exc
        raise
    await session.execute(text("SET LOCAL lock_timeout TO DEFAULT"))
    if claimed is not None:
        return Claim(claimed)

    stored = (
        await session.execute(
            select(IdempotencyRecord).where(IdempotencyRecord.scope == scope, IdempotencyRecord.key == key)
        )
    ).scalar_one()
    if stored.fingerprint != request_fingerprint:
        raise ValidationFailed(
            FieldError(
                ("header", "Idempotency-Key"),
                "this key was already used with another request",
            ),
        )
    if stored.response_status is None or stored.response_body is None:
        raise Conflict("A request with this Idempotency-Key is still in progress; retry later")
    return StoredReply(
        stored.response_status,
        dict(stored.response_headers or {}),
        stored.response_body,
    )


async def store(
    session: AsyncSession,
    claimed: Claim,
    *,
    status_code: int,
    headers: dict[str, str],
    body: bytes,
) -> None:
    await session.execute(
        update(IdempotencyRecord)
        .where(IdempotencyRecord.id == claimed.record_id)
        .values(
            response_status=status_code,
            response_headers={k: v for k, v in headers.items() if k in REPLAY_HEADERS},
            response_body=body,
        )
    )


async def purge_expired(session: AsyncSession) -> int:
    result = await session.execute(delete(IdempotencyRecord).where(IdempotencyRecord.expires_at <= utcnow()))
    return int(getattr(result, "rowcount", 0) or 0)
