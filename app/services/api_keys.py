"""API keys for integrations: shown once, stored hashed, scoped, revocable."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from app.core import audit
from app.core.enums import AuditAction
from app.core.errors import Conflict, FieldError, PermissionDenied, ValidationFailed
from app.core.pagination import Keyset, Page
from app.core.permissions import API_KEY_SCOPES
from app.core.principal import Principal
from app.core.repository import TenantRepository
from app.core.security import digest
from app.models.base import utcnow
from app.models.organization import ApiKey
from app.schemas.api_key import ApiKeyCreate
from app.services.auth import new_api_key


@dataclass(frozen=True, slots=True)
class CreatedKey:
    api_key: ApiKey
    secret: str


def _repository(session: AsyncSession, principal: Principal) -> TenantRepository[ApiKey]:
    return TenantRepository(ApiKey, session, principal, label="API key")


async def list_api_keys(session: AsyncSession, principal: Principal, *, cursor: str | None, limit: int) -> Page[ApiKey]:
    repository = _repository(session, principal)
    return await repository.page(repository.scoped(), Keyset.of([], ApiKey.id), cursor=cursor, limit=limit)


async def get_api_key(session: AsyncSession, principal: Principal, key_id: uuid.UUID) -> ApiKey:
    return await _repository(session, principal).get(key_id)


async def create_api_key(session: AsyncSession, principal: Principal, *, data: ApiKeyCreate) -> CreatedKey:
    if principal.user_id is None:
        raise PermissionDenied("API keys are created by people, not by other keys")
    not_grantable = [i for i, scope in enumerate(data.scopes) if scope not in API_KEY_SCOPES]
    if not_grantable:
        raise ValidationFailed(
            [FieldError(("body", "scopes", i), "this scope is not available to API keys") for i in not_grantable]
        )
    if data.expires_at is not None and data.expires_at <= utcnow():
        raise ValidationFailed(FieldError(("body", "expires_at"), "must be in the future"))
    prefix, secret = new_api_key()
    api_key = ApiKey(
        organization_id=principal.organization_id,
        name=data.name,
        prefix=prefix,
        secret_hash=digest(secret),
        scopes=sorted({scope.value for scope in data.scopes}),
        created_by_id=principal.user_id,
        expires_at=data.expires_at,
    )
    session.add(api_key)
    await session.flush()
    audit.record(
        session,
        principal,
        action=AuditAction.create,
        entity_type="api_key",
        entity_id=api_key.id,
        changes=audit.creation(audit.snapshot(api_key, exclude={"secret_hash", "last_used_at"})),
    )
    return CreatedKey(api_key, secret)


async def revoke_api_key(session: AsyncSession, principal: Principal, key_id: uuid.UUID) -> ApiKey:
    api_key = await _repository(session, principal).get(key_id, for_update=True)
    if api_key.revoked_at is not None:
        raise Conflict("The API key is already revoked")
    api_key.revoked_at = utcnow()
    await session.flush()
    audit.record(
        session,
        principal,
        action=AuditAction.delete,
        entity_type="api_key",
        entity_id=api_key.id,
        changes={"revoked_at": {"before": None, "after": api_key.revoked_at.isoformat()}},
    )
    return api_key
