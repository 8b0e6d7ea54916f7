"""Organisations (tenants): sign-up, settings."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core import audit
from app.core.db import transaction_cache
from app.core.enums import AuditAction
from app.core.errors import Conflict, NotFound, PermissionDenied
from app.core.permissions import ROLE_SCOPES, Role
from app.core.principal import Principal
from app.core.repository import check_version
from app.core.security import passwords
from app.core.settings import get_settings
from app.models.organization import Organization, User
from app.schemas.auth import SignupRequest
from app.schemas.organization import OrganizationUpdate
from app.services import pipelines, scoring
from app.services.auth import IssuedTokens, check_password_policy, issue_tokens, principals


@dataclass(frozen=True, slots=True)
class Founded:
    organization: Organization
    owner: User


async def found_organization(
    session: AsyncSession,
    *,
    organization_name: str,
    email: str,
    password: str,
    full_name: str,
) -> Founded:
    """A new organisation with its first user, an owner."""
    check_password_policy(password, loc=("body", "password"))
    if (await session.execute(select(User.id).where(User.email == email))).first() is not None:
        raise Conflict("A user with this e-mail already exists")
    organization = Organization(name=organization_name)
    session.add(organization)
    await session.flush()
    owner = User(
        organization_id=organization.id,
        email=email,
        full_name=full_name,
        role=Role.owner,
        password_hash=passwords().hash(password),
    )
    session.add(owner)
    await session.flush()
    principal = Principal(
        organization_id=organization.id,
        kind="user",
        id=owner.id,
        role=Role.owner,
        scopes=ROLE_SCOPES[Role.owner],
    )
    await pipelines.create_default_pipeline(session, principal)
    for entity_type, entity in (("organization", organization), ("user", owner)):
        audit.record(
            session,
            principal,
            action=AuditAction.create,
            entity_type=entity_type,
            entity_id=entity.id,
            changes=audit.creation(audit.snapshot(entity)),
        )
    return Founded(organization, owner)


async def signup(session: AsyncSession, *, data: SignupRequest) -> tuple[Founded, IssuedTokens]:
    if not get_settings().signup_enabled:
        raise PermissionDenied("Sign-up is switched off on this server; ask an administrator for an account")
    founded = await found_organization(
        session,
        organization_name=data.organization_name,
        email=data.email,
        password=data.password,
        full_name=data.full_name,
    )
    return founded, await issue_tokens(session, founded.owner)


@dataclass(frozen=True, slots=True)
class SalesSettings:
    currency: str
    lead_grade_thresholds: dict[str, int]
    lifecycle_rules: dict[str, Any]


_SALES_SETTINGS = "organization_sales_settings"


async def sales_settings(session: AsyncSession, organization_id: uuid.UUID) -> SalesSettings:
    """The organisation's settings that writes of deals, orders and contacts read (currency,
    grade thresholds, lifecycle rules): one query a transaction, however many records it writes."""
    cache = transaction_cache(session, _SALES_SETTINGS)
    if organization_id not in cache:
        row = (
            await session.execute(
                select(Organization.currency, Organization.lead_grade_thresholds, Organization.lifecycle_rules).where(
                    Organization.id == organization_id
                )
            )
        ).one()
        cache[organization_id] = SalesSettings(*row)
    settings: SalesSettings = cache[organization_id]
    return settings


async def default_currency(session: AsyncSession, organization_id: uuid.UUID) -> str:
    """The currency deals, products, orders and contracts take when they name none."""
    return (await sales_settings(session, organization_id)).currency


async def get_organization(session: AsyncSession, principal: Principal) -> Organization:
    organization = await session.get(Organization, principal.organization_id)
    assert organization is not None, "a principal's organisation exists"
    return organization


async def update_organization(
    session: AsyncSession,
    principal: Principal,
    *,
    data: OrganizationUpdate,
    expected_version: int | None,
) -> Organization:
    organization = await session.get(Organization, principal.organization_id, with_for_update=True)
    assert organization is not None
    check_version(organization.version, expected_version)
    before = audit.snapshot(organization, exclude={"rescore_requested_at"})
    changes = data.changes()
    if data.lifecycle_rules is not None:
        # Stored as JSON: the spend threshold as a decimal string.
        changes["lifecycle_rules"] = data.lifecycle_rules.model_dump(mode="json")
    for name, value in changes.items():
        setattr(organization, name, value)
    await session.flush()
    principals.forget_on_commit(session, organization.id)
    transaction_cache(session, _SALES_SETTINGS).pop(organization.id, None)
    if delta := audit.diff(before, audit.snapshot(organization, exclude={"rescore_requested_at"})):
        if "lead_grade_thresholds" in delta:
            await scoring.mark_stale(session, principal)
        audit.record(
            session,
            principal,
            action=AuditAction.update,
            entity_type="organization",
            entity_id=organization.id,
            changes=delta,
        )
    return organization


async def operator_principal(session: AsyncSession, organization_id: uuid.UUID) -> Principal:
    """Who the command line acts as inside an organisation: its first active owner (so what it
    writes is audited to a person)."""
    owner = (
        await session.execute(
            select(User)
            .where(User.organization_id == organization_id, User.role == Role.owner, User.is_active.is_(True))
            .order_by(User.created_at)
            .limit(1)
        )
    ).scalar_one_or_none()
    if owner is None:
        raise NotFound(f"No organisation {organization_id} with an active owner")
    return Principal(
        organization_id=organization_id, kind="user", id=owner.id, role=Role.owner, scopes=ROLE_SCOPES[Role.owner]
    )


async def sole_organization_id(session: AsyncSession) -> uuid.UUID:
    """The organisation of a single-organisation installation, for commands given no `--org`."""
    ids = (await session.execute(select(Organization.id).order_by(Organization.created_at).limit(2))).scalars().all()
    if len(ids) != 1:
        raise NotFound("There is no organisation yet" if not ids else "There are several organisations: give --org")
    return ids[0]
