"""Users of an organisation: who they are, their role, whether they may sign in."""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core import audit
from app.core.db import lock_for_transaction, transaction_cache
from app.core.enums import AuditAction
from app.core.errors import (
    Conflict,
    FieldError,
    PermissionDenied,
    ValidationFailed,
)
from app.core.pagination import Keyset, Page
from app.core.permissions import ASSIGNABLE_ROLES, Role
from app.core.principal import Principal
from app.core.repository import TenantRepository
from app.core.security import passwords
from app.models.base import utcnow
from app.models.organization import User
from app.schemas.user import UserCreate, UserUpdate
from app.services.auth import check_password_policy, principals, revoke_user_tokens


def _repository(session: AsyncSession, principal: Principal) -> TenantRepository[User]:
    return TenantRepository(User, session, principal, label="user")


def _check_can_grant(principal: Principal, role: Role) -> None:
    if principal.role is None or role not in ASSIGNABLE_ROLES.get(principal.role, frozenset()):
        raise PermissionDenied(f"Your role cannot grant the `{role.value}` role")


def _check_can_manage(principal: Principal, user: User) -> None:
    if user.role is Role.owner and principal.role is not Role.owner:
        raise PermissionDenied("Only an owner can change another owner")


async def _active_owner_count(session: AsyncSession, organization_id: uuid.UUID) -> int:
    statement = select(func.count()).where(
        User.organization_id == organization_id, User.role == Role.owner, User.is_active.is_(True)
    )
    return int((await session.execute(statement)).scalar_one())


async def _serialise_role_changes(session: AsyncSession, principal: Principal) -> None:
    """Role changes and deactivations in one organisation take turns, so two owners demoting
    each other at once cannot both pass the last-owner check."""
    await lock_for_transaction(session, "user-roles", str(principal.organization_id))


async def list_users(
    session: AsyncSession,
    principal: Principal,
    *,
    role: Role | None,
    is_active: bool | None,
    cursor: str | None,
    limit: int,
) -> Page[User]:
    repository = _repository(session, principal)
    statement = repository.scoped()
    if role is not None:
        statement = statement.where(User.role == role)
    if is_active is not None:
        statement = statement.where(User.is_active.is_(is_active))
    return await repository.page(statement, Keyset.of([], User.id), cursor=cursor, limit=limit)


async def get_user(session: AsyncSession, principal: Principal, user_id: uuid.UUID) -> User:
    return await _repository(session, principal).get(user_id)


async def create_user(session: AsyncSession, principal: Principal, *, data: UserCreate) -> User:
    _check_can_grant(principal, data.role)
    check_password_policy(data.password, loc=("body", "password"))
    if (await session.execute(select(User.id).where(User.email == data.email))).first() is not None:
        raise Conflict("A user with this e-mail already exists")
    user = User(
        organization_id=principal.organization_id,
        email=data.email,
        full_name=data.full_name,
        role=data.role,
        password_hash=passwords().hash(data.password),
    )
    session.add(user)
    await session.flush()
    audit.record(
        session,
        principal,
        action=AuditAction.create,
        entity_type="user",
        entity_id=user.id,
        changes=audit.creation(audit.snapshot(user)),
    )
    return user


async def update_user(
    session: AsyncSession,
    principal: Principal,
    user_id: uuid.UUID,
    *,
    data: UserUpdate,
    expected_version: int | None,
) -> User:
    if "role" in data.model_fields_set:
        await _serialise_role_changes(session, principal)
    user = await _repository(session, principal).locked(user_id, expected_version=expected_version)
    _check_can_manage(principal, user)
    changes = data.changes()
    if "role" in changes and changes["role"] != user.role:
        _check_can_grant(principal, changes["role"])
        if user.role is Role.owner and user.is_active and await _active_owner_count(session, user.organization_id) <= 1:
            raise Conflict("The organisation's last owner cannot be given another role")
    before = audit.snapshot(user)
    for name, value in changes.items():
        setattr(user, name, value)
    await session.flush()
    principals.forget_on_commit(session, user.organization_id, user.id)
    if delta := audit.diff(before, audit.snapshot(user)):
        audit.record(
            session,
            principal,
            action=AuditAction.update,
            entity_type="user",
            entity_id=user.id,
            changes=delta,
        )
    return user


async def set_user_active(
    session: AsyncSession,
    principal: Principal,
    user_id: uuid.UUID,
    *,
    active: bool,
    expected_version: int | None,
) -> User:
    await _serialise_role_changes(session, principal)
    user = await _repository(session, principal).locked(user_id, expected_version=expected_version)
    _check_can_manage(principal, user)
    if user.is_active == active:
        return user
    if not active:
        if user.id == principal.id:
            raise Conflict("You cannot deactivate yourself")
        if user.role is Role.owner and await _active_owner_count(session, user.organization_id) <= 1:
            raise Conflict("The organisation's last owner cannot be deactivated")
    before = audit.snapshot(user)
    user.is_active = active
    user.deactivated_at = None if active else utcnow()
    if not active:
        await revoke_user_tokens(session, user)
    await session.flush()
    principals.forget_on_commit(session, user.organization_id, user.id)
    audit.record(
        session,
        principal,
        action=AuditAction.update,
        entity_type="user",
        entity_id=user.id,
        changes=audit.diff(before, audit.snapshot(user)),
    )
    return user


async def ensure_assignable(session: AsyncSession, principal: Principal, user_id: uuid.UUID) -> None:
    """Records may be owned only by active users of the same organisation."""
    known = transaction_cache(session, "assignable_users")
    if user_id not in known:
        await prefetch_assignable(session, principal, [user_id])
    if problem := known[user_id]:
        raise ValidationFailed(FieldError(("body", "owner_id"), problem))


async def prefetch_assignable(session: AsyncSession, principal: Principal, user_ids: Iterable[uuid.UUID]) -> None:
    """Looks up whether each user may own records, in one query, for `ensure_assignable`."""
    known = transaction_cache(session, "assignable_users")
    wanted = set(user_ids) - known.keys()
    if not wanted:
        return
    rows = await session.execute(
        select(User.id, User.is_active).where(User.organization_id == principal.organization_id, User.id.in_(wanted))
    )
    active = {row.id: row.is_active for row in rows}
    for user_id in wanted:
        known[user_id] = (
            "no such user" if user_id not in active else None if active[user_id] else "the user is deactivated"
        )


async def active_ids_by_email(
    session: AsyncSession, principal: Principal, emails: Iterable[str]
) -> dict[str, uuid.UUID]:
    """The organisation's active users among these e-mails (lower-case), by e-mail."""
    wanted = {email.lower() for email in emails}
    if not wanted:
        return {}
    rows = await session.execute(
        select(User.id, User.email).where(
            User.organization_id == principal.organization_id,
            func.lower(User.email).in_(wanted),
            User.is_active.is_(True),
        )
    )
    return {row.email.lower(): row.id for row in rows}
