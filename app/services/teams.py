"""Teams: groups of users, used for record visibility."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core import audit
from app.core.enums import AuditAction
from app.core.errors import FieldError, ValidationFailed
from app.core.pagination import Keyset, Page
from app.core.principal import Principal
from app.core.repository import TenantRepository
from app.models.base import utcnow
from app.models.organization import Team, TeamMember, User
from app.schemas.team import TeamCreate, TeamUpdate


@dataclass(frozen=True, slots=True)
class TeamWithMembers:
    team: Team
    member_ids: list[uuid.UUID]


def _repository(session: AsyncSession, principal: Principal) -> TenantRepository[Team]:
    return TenantRepository(Team, session, principal, label="team")


async def _members(
    session: AsyncSession, organization_id: uuid.UUID, team_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[uuid.UUID]]:
    members: dict[uuid.UUID, list[uuid.UUID]] = {team_id: [] for team_id in team_ids}
    if team_ids:
        rows = await session.execute(
            select(TeamMember.team_id, TeamMember.user_id)
            .where(
                TeamMember.organization_id == organization_id,
                TeamMember.team_id.in_(team_ids),
            )
            .order_by(TeamMember.team_id, TeamMember.user_id)
        )
        for team_id, user_id in rows:
            members[team_id].append(user_id)
    return members


async def _set_members(
    session: AsyncSession,
    principal: Principal,
    team: Team,
    member_ids: Sequence[uuid.UUID],
) -> list[uuid.UUID]:
    wanted = list(dict.fromkeys(member_ids))
    if wanted:
        found = set(
            (
                await session.execute(
                    select(User.id).where(
                        User.organization_id == principal.organization_id,
                        User.id.in_(wanted),
                    )
                )
            ).scalars()
        )
        missing = [i for i, user_id in enumerate(member_ids) if user_id not in found]
        if missing:
            raise ValidationFailed([FieldError(("body", "member_ids", i), "no such user") for i in missing])
    await session.execute(
        delete(TeamMember).where(
            TeamMember.organization_id == principal.organization_id,
            TeamMember.team_id == team.id,
        )
    )
    session.add_all(TeamMember(organization_id=principal.organization_id, team_id=team.id, user_id=u) for u in wanted)
    await session.flush()
    return sorted(wanted)


async def list_teams(
    session: AsyncSession, principal: Principal, *, cursor: str | None, limit: int
) -> Page[TeamWithMembers]:
    repository = _repository(session, principal)
    page = await repository.page(repository.scoped(), Keyset.of([], Team.id), cursor=cursor, limit=limit)
    members = await _members(session, principal.organization_id, [team.id for team in page.items])
    return Page(
        [TeamWithMembers(team, members[team.id]) for team in page.items],
        page.next_cursor,
    )


async def get_team(session: AsyncSession, principal: Principal, team_id: uuid.UUID) -> TeamWithMembers:
    team = await _repository(session, principal).get(team_id)
    return TeamWithMembers(team, (await _members(session, principal.organization_id, [team.id]))[team.id])


async def create_team(session: AsyncSession, principal: Principal, *, data: TeamCreate) -> TeamWithMembers:
    team = Team(
        organization_id=principal.organization_id,
        name=data.name,
        description=data.description,
    )
    session.add(team)
    await session.flush()
    member_ids = await _set_members(session, principal, team, data.member_ids)
    changes = audit.creation({**audit.snapshot(team), "member_ids": [str(m) for m in member_ids]})
    audit.record(
        session,
        principal,
        action=AuditAction.create,
        entity_type="team",
        entity_id=team.id,
        changes=changes,
    )
    return TeamWithMembers(team, member_ids)


async def update_team(
    session: AsyncSession,
    principal: Principal,
    team_id: uuid.UUID,
    *,
    data: TeamUpdate,
    expected_version: int | None,
) -> TeamWithMembers:
    team = await _repository(session, principal).locked(team_id, expected_version=expected_version)
    current = (await _members(session, principal.organization_id, [team.id]))[team.id]
    before = {**audit.snapshot(team), "member_ids": [str(m) for m in current]}
    changes = data.changes()
    member_ids = current
    if "member_ids" in changes:
        member_ids = await _set_members(session, principal, team, changes.pop("member_ids"))
    for name, value in changes.items():
        setattr(team, name, value)
    after = {**audit.snapshot(team), "member_ids": [str(m) for m in member_ids]}
    if delta := audit.diff(before, after):
        # Membership is part of the team: a change to it alone still makes a new version.
        team.updated_at = utcnow()
        await session.flush()
        audit.record(
            session,
            principal,
            action=AuditAction.update,
            entity_type="team",
            entity_id=team.id,
            changes=delta,
        )
    return TeamWithMembers(team, member_ids)


async def delete_team(
    session: AsyncSession,
    principal: Principal,
    team_id: uuid.UUID,
    *,
    expected_version: int | None,
) -> None:
    team = await _repository(session, principal).locked(team_id, expected_version=expected_version)
    members = (await _members(session, principal.organization_id, [team.id]))[team.id]
    before = {**audit.snapshot(team), "member_ids": [str(m) for m in members]}
    await session.delete(team)
    await session.flush()
    audit.record(
        session,
        principal,
        action=AuditAction.delete,
        entity_type="team",
        entity_id=team_id,
        changes={k: {"before": v, "after": None} for k, v in before.items()},
    )
