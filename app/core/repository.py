"""Tenant scoping in one place (STYLE habit 3): every query starts from `scoped()`.

A restricted caller (sales or support under a `team`/`own` visibility setting) sees only the
records it owns or its team-mates own; a record it may not see is reported missing, never
forbidden, so ids do not leak.
"""

from __future__ import annotations

import uuid
from typing import Any, Generic, TypeVar

from sqlalchemy import ColumnElement, Select, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from app.core.errors import NotFound, PreconditionFailed
from app.core.pagination import Keyset, Page
from app.core.permissions import Visibility
from app.core.principal import Principal
from app.models.base import Base
from app.models.organization import TeamMember

M = TypeVar("M", bound=Base)


def visible_owner_clause(principal: Principal, owner_column: ColumnElement[Any]) -> ColumnElement[bool] | None:
    match principal.visibility:
        case Visibility.all:
            return None
        case Visibility.own:
            return owner_column == principal.id
        case Visibility.team:
            mine, mates = aliased(TeamMember), aliased(TeamMember)
            team_mates = (
                select(mates.user_id)
                .join(
                    mine,
                    (mine.organization_id == mates.organization_id) & (mine.team_id == mates.team_id),
                )
                .where(
                    mine.organization_id == principal.organization_id,
                    mine.user_id == principal.id,
                )
            )
            return (owner_column == principal.id) | owner_column.in_(team_mates)


def check_version(current: int, expected: int | None) -> None:
    """`If-Match` carried a version: refuse to write over anything newer."""
    if expected is not None and expected != current:
        raise PreconditionFailed(f"The record is at version {current}, not {expected}; reload it and retry")


class TenantRepository(Generic[M]):
    """Reads of one tenant table, as the principal may see them."""

    def __init__(self, model: type[M], session: AsyncSession, principal: Principal, *, label: str) -> None:
        self.model = model
        self.session = session
        self.principal = principal
        self.label = label

    @property
    def _columns(self) -> Any:
        return self.model.__table__.c

    def scoped(self) -> Select[M]:
        statement = select(self.model).where(self._columns.organization_id == self.principal.organization_id)
        if (
            "owner_id" in self._columns
            and (clause := visible_owner_clause(self.principal, self._columns.owner_id)) is not None
        ):
            statement = statement.where(clause)
        return statement

    async def get(self, record_id: uuid.UUID, *, for_update: bool = False) -> M:
        statement = self.scoped().where(self._columns.id == record_id)
        if for_update:
            statement = statement.with_for_update()
        record = (await self.session.execute(statement)).scalar_one_or_none()
        if record is None:
            raise NotFound(f"No {self.label} with id {record_id}")
        return record

    async def exists(self, record_id: uuid.UUID) -> bool:
        statement = self.scoped().with_only_columns(self._columns.id).where(self._columns.id == record_id)
        return (await self.session.execute(statement)).first() is not None

    async def page(self, statement: Select[Any], keyset: Keyset, *, cursor: str | None, limit: int) -> Page[M]:
        rows = (await self.session.execute(keyset.apply(statement, cursor=cursor, limit=limit))).all()
        return keyset.page(rows, limit=limit, id_of=lambda record: record.id)
