"""Merging duplicates: one survivor keeps the others' data and everything that pointed at them.

Nothing names the tables that refer to a contact or a company: the merge asks PostgreSQL's
catalogue for every foreign key into the merged table (app/core/references.py) and repoints each
of them, so a table added by a later issue (deals, tickets, list memberships…) is moved without
being listed anywhere. The merged records stay, archived, with `merged_into_id` pointing at the
survivor (earlier merges into them are repointed too), so an old id still leads somewhere: GET
answers 301 with the survivor.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Final

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.core import audit
from app.core.enums import AuditAction
from app.core.errors import Conflict, FieldError, NotFound, ValidationFailed
from app.core.principal import Principal
from app.core.references import references_to
from app.models.base import utcnow
from app.services import records
from app.services.records import RecordType

MAX_MERGED: Final = 50
# Not chosen between: identity, bookkeeping and merge state.
_NOT_MERGEABLE: Final = frozenset(
    {
        "id",
        "organization_id",
        "version",
        "created_at",
        "updated_at",
        "archived_at",
        "erased_at",
        "merged_into_id",
        "lead_score",
        "lead_grade",
    }
)

# Unique keys (primary keys included) of a table, as column lists; partial and expression indexes
# are left out (a merge cannot make those collide through a plain column).
_UNIQUE_KEYS = text(
    """
    SELECT array_agg(a.attname::text ORDER BY k.ordinality) AS columns
    FROM pg_index i
    CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ordinality)
    JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
    WHERE i.indrelid = CAST(:table AS regclass) AND i.indisunique
      AND i.indpred IS NULL AND i.indexprs IS NULL
    GROUP BY i.indexrelid
    """
)


def _quoted(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


async def repoint_references(
    session: AsyncSession, table: str, organization_id: uuid.UUID, survivor: uuid.UUID, merged: Sequence[uuid.UUID]
) -> dict[str, int]:
    """Every row of any table whose foreign key points at a merged record now points at the
    survivor; the number of rows moved per `table.column`."""
    moved: dict[str, int] = {}
    for reference in await references_to(session, table):
        referring_table, column = reference.table, reference.column
        # The identifiers come from the catalogue, and are quoted.
        name = ".".join(_quoted(part) for part in referring_table.split("."))
        await _drop_colliding_links(session, name, referring_table, column, organization_id, survivor, merged)
        result = await session.execute(
            text(
                f"UPDATE {name} SET {_quoted(column)} = :survivor "
                f"WHERE organization_id = :organization_id AND {_quoted(column)} = ANY(:merged)"
            ),
            {"survivor": survivor, "organization_id": organization_id, "merged": list(merged)},
        )
        if count := int(result.rowcount or 0):  # type: ignore[attr-defined]
            moved[reference.name] = count
    return moved


async def _drop_colliding_links(
    session: AsyncSession,
    name: str,
    referring_table: str,
    column: str,
    organization_id: uuid.UUID,
    survivor: uuid.UUID,
    merged: Sequence[uuid.UUID],
) -> None:
    """Where the reference is part of a unique key (a deal's contacts: one row per deal and
    contact), a merged record's row that would duplicate the survivor's (or another merged
    record's) once repointed is dropped: the survivor's row wins, else the first one."""
    for (key,) in await session.execute(_UNIQUE_KEYS, {"table": referring_table}):
        if column not in key:
            continue
        same_key = " AND ".join(f"kept.{_quoted(c)} = dropped.{_quoted(c)}" for c in key if c != column)
        await session.execute(
            text(
                f"DELETE FROM {name} AS dropped "
                f"WHERE dropped.organization_id = :organization_id AND dropped.{_quoted(column)} = ANY(:merged) "
                f"AND EXISTS (SELECT 1 FROM {name} AS kept WHERE {same_key} "
                f"AND (kept.{_quoted(column)} = :survivor "
                f"OR (kept.{_quoted(column)} = ANY(:merged) AND kept.ctid < dropped.ctid)))"
            ),
            {"survivor": survivor, "organization_id": organization_id, "merged": list(merged)},
        )


def _merged_value(field: str, survivor: Any, others: Sequence[Any]) -> Any:
    """Without a choice: lists are united, custom fields filled in, empty fields taken from the
    first merged record that has a value."""
    value = getattr(survivor, field)
    if isinstance(value, list):
        united = list(value)
        for other in others:
            united += [item for item in getattr(other, field) if item not in united]
        return united
    if isinstance(value, dict):
        combined: dict[str, Any] = {}
        for other in reversed(others):
            combined |= getattr(other, field)
        return combined | value
    if value in (None, ""):
        return next((getattr(o, field) for o in others if getattr(o, field) not in (None, "")), value)
    return value


def mergeable_fields(kind: RecordType[Any]) -> frozenset[str]:
    columns = {attribute.key for attribute in kind.model.__mapper__.column_attrs}
    return frozenset(set(kind.read_schema.model_fields) & columns - _NOT_MERGEABLE)


def folded(kind: RecordType[Any], survivor: Any, others: Sequence[Any], chosen: Mapping[str, Any]) -> dict[str, Any]:
    """The survivor's values after a merge: a chosen record's value where one was chosen, else
    the survivor's, filled in from the others."""
    return {
        field: getattr(chosen[field], field) if field in chosen else _merged_value(field, survivor, others)
        for field in sorted(mergeable_fields(kind))
    }


async def merge(
    session: AsyncSession,
    principal: Principal,
    kind: RecordType[Any],
    survivor_id: uuid.UUID,
    *,
    merge_ids: Sequence[uuid.UUID],
    field_choices: Mapping[str, uuid.UUID],
    expected_version: int | None,
    after_move: Callable[[AsyncSession, Principal, Any], Awaitable[None]] | None = None,
) -> tuple[Any, dict[str, int]]:
    unique_ids = list(dict.fromkeys(merge_ids))
    if not unique_ids or len(unique_ids) > MAX_MERGED:
        raise ValidationFailed(FieldError(("body", "merge_ids"), f"give 1 to {MAX_MERGED} ids"))
    if survivor_id in unique_ids:
        raise ValidationFailed(FieldError(("body", "merge_ids"), "the survivor cannot be merged into itself"))
    repository = kind.repository(session, principal)
    survivor = await repository.locked(survivor_id, expected_version=expected_version)
    found = await session.execute(
        repository.scoped().where(kind.model.id.in_(unique_ids)).order_by(kind.model.id).with_for_update()
    )
    others = list(found.scalars())
    if missing := sorted(set(unique_ids) - {other.id for other in others}):
        raise NotFound(f"No {kind.label} with id {missing[0]}")
    for record in (survivor, *others):
        if getattr(record, "erased_at", None) is not None:
            raise Conflict(f"The {kind.label} {record.id} was erased")
        if record.merged_into_id is not None:
            raise Conflict(f"The {kind.label} {record.id} was already merged into {record.merged_into_id}")
        if record is not survivor and record.archived_at is not None:
            raise Conflict(f"The {kind.label} {record.id} is archived; restore it to merge it")
    if survivor.archived_at is not None:
        raise Conflict(f"The {kind.label} {survivor.id} is archived; restore it first")

    mergeable = mergeable_fields(kind)
    by_id = {record.id: record for record in (survivor, *others)}
    errors = [
        FieldError(("body", "field_choices", field), "not a field that merges")
        for field in field_choices
        if field not in mergeable
    ] + [
        FieldError(("body", "field_choices", field), "not one of the merged records")
        for field, chosen in field_choices.items()
        if chosen not in by_id
    ]
    if errors:
        raise ValidationFailed(errors)

    before = audit.snapshot(survivor)
    values = folded(kind, survivor, others, {field: by_id[chosen] for field, chosen in field_choices.items()})
    now = utcnow()
    for other in others:
        # external_id is unique: free it before the survivor may take it.
        other.external_id = None
        other.archived_at = now
        other.merged_into_id = survivor.id
    await session.flush()
    moved = await repoint_references(
        session, kind.model.__tablename__, principal.organization_id, survivor.id, [o.id for o in others]
    )
    for field, value in values.items():
        if getattr(survivor, field) != value:
            setattr(survivor, field, value)
    if after_move is not None:
        await after_move(session, principal, survivor)
    await session.flush()
    await kind.written(session, principal, [survivor])

    merged_ids = [str(o.id) for o in others]
    changes = audit.diff(before, audit.snapshot(survivor)) | {"merged_ids": {"before": None, "after": merged_ids}}
    records.announce(session, principal, kind, survivor, action=AuditAction.merge, event="merged", changes=changes)
    for other in others:
        audit.record(
            session,
            principal,
            action=AuditAction.merge,
            entity_type=kind.label,
            entity_id=other.id,
            changes={"merged_into_id": {"before": None, "after": str(survivor.id)}},
        )
    await kind.announced(session, principal, [survivor])
    return survivor, moved
