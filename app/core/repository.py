"""Tenant scoping in one place (STYLE habit 3): every query starts from `scoped()`.

A restricted caller (sales or support under a `team`/`own` visibility setting) sees only the
records it owns or its team-mates own; a record it may not see is reported missing, never
forbidden, so ids do not leak.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from functools import lru_cache
from typing import Any, Generic, TypeVar

from sqlalchemy import ColumnElement, Select, bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from app.core import reads
from app.core.errors import NotFound, PreconditionFailed
from app.core.pagination import Keyset, Page
from app.core.permissions import Visibility
from app.core.principal import Principal
from app.models.base import Base
from app.models.organization import TeamMember

M = TypeVar("M", bound=Base)


def _owner_clause(
    visibility: Visibility, owner_column: ColumnElement[Any], organization_id: Any, principal_id: Any
) -> ColumnElement[bool] | None:
    """Takes values or bind parameters for the two ids, so a cached statement can use it too."""
    match visibility:
        case Visibility.all:
            return None
        case Visibility.own:
            owned: ColumnElement[bool] = owner_column == principal_id
            return owned
        case Visibility.team:
            mine, mates = aliased(TeamMember), aliased(TeamMember)
            team_mates = (
                select(mates.user_id)
                .join(mine, (mine.organization_id == mates.organization_id) & (mine.team_id == mates.team_id))
                .where(mine.organization_id == organization_id, mine.user_id == principal_id)
            )
            owned_by_team: ColumnElement[bool] = (owner_column == principal_id) | owner_column.in_(team_mates)
            return owned_by_team


def visible_owner_clause(principal: Principal, owner_column: ColumnElement[Any]) -> ColumnElement[bool] | None:
    return _owner_clause(principal.visibility, owner_column, principal.organization_id, principal.id)


@lru_cache(maxsize=256)
def _get_by_id(model: type[Base], visibility: Visibility, for_update: bool) -> Select[Any]:
    """`get` runs on every request: build its statement once per shape, bind the ids per call."""
    columns = model.__table__.c
    statement = select(model).where(
        columns.organization_id == bindparam("organization_id"), columns.id == bindparam("record_id")
    )
    if "owner_id" in columns:
        clause = _owner_clause(visibility, columns.owner_id, bindparam("organization_id"), bindparam("principal_id"))
        if clause is not None:
            statement = statement.where(clause)
    return statement.with_for_update() if for_update else statement


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

    def _by_id(self, record_id: uuid.UUID, *, for_update: bool) -> tuple[Select[Any], dict[str, Any]]:
        owned = "owner_id" in self._columns
        statement = _get_by_id(self.model, self.principal.visibility if owned else Visibility.all, for_update)
        parameters = {
            "organization_id": self.principal.organization_id,
            "record_id": record_id,
            "principal_id": self.principal.id,
        }
        return statement, parameters

    async def get(self, record_id: uuid.UUID, *, for_update: bool = False) -> M:
        statement, parameters = self._by_id(record_id, for_update=for_update)
        record: M | None = (await self.session.execute(statement, parameters)).scalar_one_or_none()
        if record is None:
            raise NotFound(f"No {self.label} with id {record_id}")
        return record

    async def locked(self, record_id: uuid.UUID, *, expected_version: int | None) -> M:
        """`get` for a write: locked for the transaction, and at the version `If-Match` names."""
        record = await self.get(record_id, for_update=True)
        check_version(record.version, expected_version)  # type: ignore[attr-defined]
        return record

    async def read(self, record_id: uuid.UUID) -> Mapping[str, Any]:
        """`get` for a reply only: the row as a mapping, read without the ORM (see core/reads)."""
        row = await reads.fetch_one(*self._by_id(record_id, for_update=False))
        if row is None:
            raise NotFound(f"No {self.label} with id {record_id}")
        return row

    async def page(self, statement: Select[Any], keyset: Keyset, *, cursor: str | None, limit: int) -> Page[M]:
        rows = (await self.session.execute(keyset.apply(statement, cursor=cursor, limit=limit))).all()
        return keyset.page(rows, limit=limit, id_of=lambda record: record.id)
