"""What the core records (contacts, companies) share: finding, archiving, restoring, history."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError
from sqlalchemy import ColumnElement, and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core import audit, csv_export, events, text_search
from app.core.db import any_of, copy_rows, insert_values, lock_for_transaction, update_changed
from app.core.enums import AuditAction, CustomFieldEntity
from app.core.errors import Conflict, DomainError, FieldError, NotFound, PreconditionFailed, ValidationFailed
from app.core.pagination import MAX_LIMIT, Keyset, Page
from app.core.principal import Principal
from app.core.repository import TenantRepository
from app.models.audit import AuditEntry
from app.models.base import Base, utcnow
from app.services import filters, users
from app.services.custom_fields import definitions_for, filter_fields, validate_values
from app.services.filters import FieldRegistry, FieldSpec, FieldType, Node, Op

M = TypeVar("M", bound=Base)
S = TypeVar("S", bound=BaseModel)


@dataclass(frozen=True, slots=True)
class RecordType(Generic[M]):
    model: type[M]
    label: str
    custom_entity: CustomFieldEntity
    builtin_fields: Callable[[], dict[str, FieldSpec]]
    # Normalised text columns a `q` term is checked against after the gram index narrowed it.
    search_columns: Callable[[], Sequence[ColumnElement[str]]]
    # How the API shows the record: also the `data` of its events.
    read_schema: type[BaseModel]
    # Fields whose change is a domain transition with its own event (`owner_id` → `contact.assigned`).
    transitions: Mapping[str, str]
    # The document a record's search grams are made of (as the database's trigger makes it).
    gram_document: Callable[[Any], str]
    # Data derived from the records (a contact's lead score), brought up to date after they were
    # written and flushed, before their events are built: every write path calls it.
    refresh_derived: Callable[[AsyncSession, Principal, Sequence[Any]], Awaitable[None]] | None = None
    # What follows from the change once it is announced, with events of its own after the
    # change's (a contact's lifecycle moved by its new score, its assignment by a rule).
    follow_up: Callable[[AsyncSession, Principal, Sequence[Any]], Awaitable[None]] | None = None

    async def written(self, session: AsyncSession, principal: Principal, written: Sequence[Any]) -> None:
        if self.refresh_derived is not None and written:
            await self.refresh_derived(session, principal, written)

    async def announced(self, session: AsyncSession, principal: Principal, records: Sequence[Any]) -> None:
        if self.follow_up is not None and records:
            await self.follow_up(session, principal, records)

    def repository(self, session: AsyncSession, principal: Principal) -> TenantRepository[M]:
        return TenantRepository(self.model, session, principal, label=self.label)

    @property
    def columns(self) -> Any:
        return self.model.__table__.c


@dataclass(frozen=True, slots=True)
class FindQuery:
    """A list or search request, already parsed from query parameters or a search body."""

    filter: Any = None
    equals: Mapping[str, Any] | None = None
    q: str | None = None
    sort: Sequence[str] | str | None = None
    cursor: str | None = None
    limit: int = 50
    archived: bool = False
    filter_loc: tuple[str | int, ...] = ("body", "filter")
    sort_loc: tuple[str | int, ...] = ("query", "sort")


async def field_registry(session: AsyncSession, principal: Principal, kind: RecordType[Any]) -> FieldRegistry:
    return await organization_registry(session, principal.organization_id, kind)


async def organization_registry(
    session: AsyncSession, organization_id: uuid.UUID, kind: RecordType[Any]
) -> FieldRegistry:
    """The fields a filter over the organisation's records may name, custom fields included."""
    fields = kind.builtin_fields()
    definitions = await definitions_for(session, organization_id, kind.custom_entity)
    fields.update(filter_fields(definitions, kind.columns.custom_fields))
    return FieldRegistry(kind.label, fields)


async def search_condition(session: AsyncSession, kind: RecordType[Any], q: str) -> ColumnElement[bool] | None:
    """Every term must occur: the GIN gram index finds the records, and a LIKE on the text
    confirms terms longer than a gram (see `text_search.needs_recheck`)."""
    terms = text_search.query_terms(q)
    if not terms:
        return None
    needed = sorted({gram for term in terms for gram in text_search.grams(term)})
    conditions: list[ColumnElement[bool]] = [kind.columns.search_grams.contains(needed)]
    frequencies = await text_search.gram_statistics.frequencies(session, kind.model.__tablename__)
    for term in terms:
        if not text_search.needs_recheck(term, frequencies):
            continue
        pattern = text_search.like_pattern(term)
        conditions.append(or_(*(column.like(pattern, escape="\\") for column in kind.search_columns())))
    return and_(*conditions)


def _equality_nodes(registry: FieldRegistry, equals: Mapping[str, Any]) -> list[Node]:
    nodes: list[Node] = []
    for name, raw in equals.items():
        if raw is None:
            continue
        spec = registry.get(name, ("query", name))
        op = Op.contains if spec.type is FieldType.tags else Op.eq
        nodes.append(
            filters.parse(
                {"field": name, "op": op.value, "value": raw},
                registry,
                loc=("query", name),
            )
        )
    return nodes


async def find(session: AsyncSession, principal: Principal, kind: RecordType[M], query: FindQuery) -> Page[M]:
    repository = kind.repository(session, principal)
    registry = await field_registry(session, principal, kind)
    statement = repository.scoped().where(
        kind.columns.archived_at.is_not(None) if query.archived else kind.columns.archived_at.is_(None)
    )
    nodes = _equality_nodes(registry, query.equals or {})
    if query.filter is not None:
        nodes.append(filters.parse(query.filter, registry, loc=query.filter_loc))
    if nodes:
        statement = statement.where(filters.to_sql(filters.And(tuple(nodes))))
    if query.q and (condition := await search_condition(session, kind, query.q)) is not None:
        statement = statement.where(condition)
    sort = filters.parse_sort(query.sort, registry, loc=query.sort_loc)
    keyset = Keyset.of(sort.keys, kind.columns.id, id_descending=sort.id_descending)
    return await repository.page(statement, keyset, cursor=query.cursor, limit=query.limit)


async def every_match(
    session: AsyncSession, principal: Principal, kind: RecordType[M], query: FindQuery
) -> AsyncIterator[M]:
    """Every record the query matches, read a page at a time."""
    cursor = query.cursor
    while True:
        page = await find(session, principal, kind, replace(query, cursor=cursor, limit=MAX_LIMIT))
        for record in page.items:
            yield record
        if page.next_cursor is None:
            return
        cursor = page.next_cursor


async def find_all(
    session: AsyncSession, principal: Principal, kind: RecordType[M], query: FindQuery, *, at_most: int
) -> list[M]:
    """Every record the query matches, or a 422 when there are more than `at_most`."""
    found: list[M] = []
    async for record in every_match(session, principal, kind, query):
        found.append(record)
        if len(found) > at_most:
            raise ValidationFailed(
                FieldError(("header", "accept"), f"more than {at_most} {kind.label} records match: narrow the filter")
            )
    return found


async def export_rows(
    session: AsyncSession, principal: Principal, kind: RecordType[M], query: FindQuery
) -> tuple[list[str], AsyncIterator[dict[str, Any]]]:
    """The columns (built-in fields, then one per custom field) and, page by page, every matching
    record flattened to them: for exports too large to hold at once."""
    definitions = await definitions_for(session, principal.organization_id, kind.custom_entity)
    schema = kind.read_schema
    columns = [f for f in (*schema.model_fields, *schema.model_computed_fields) if f != "custom_fields"]
    columns += [f"custom_fields.{key}" for key in sorted(definitions)]
    rows = (
        csv_export.flatten(schema.model_validate(record).model_dump(mode="json"))
        async for record in every_match(session, principal, kind, query)
    )
    return columns, rows


async def custom_values(
    session: AsyncSession,
    principal: Principal,
    kind: RecordType[Any],
    incoming: Mapping[str, Any],
    *,
    current: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Validated custom field values: the new record's (`current` None) or `incoming` merged."""
    definitions = await definitions_for(
        session, principal.organization_id, kind.custom_entity, for_write=bool(incoming) or current is not None
    )
    return validate_values(definitions, incoming, current=current)


Related = tuple[str, type[Base], str]


async def related_records(
    session: AsyncSession, principal: Principal, values: Mapping[str, Any], related: Sequence[Related]
) -> dict[str, Any]:
    """The records a body names by id — `related` lists (field, model, label) — found among those
    the caller can see in its organisation, by field; a 422 at every field that names none (the
    composite foreign keys would refuse another tenant's anyway)."""
    found: dict[str, Any] = {}
    errors = []
    for field, model, label in related:
        if (record_id := values.get(field)) is None:
            continue
        try:
            found[field] = await TenantRepository(model, session, principal, label=label).get(record_id)
        except NotFound:
            errors.append(FieldError(("body", field), f"no {label} with id {record_id}"))
            continue
        if (survivor := merged_into(found[field])) is not None:
            errors.append(FieldError(("body", field), merged_link(label, survivor)))
    if errors:
        raise ValidationFailed(errors)
    return found


def merged_into(record: Any) -> uuid.UUID | None:
    """The survivor of a merged contact or company. Nothing may be linked to the merged record
    any more: it would stay with the archived record, out of the survivor's sight."""
    survivor: uuid.UUID | None = getattr(record, "merged_into_id", None)
    return survivor


def merged_link(label: str, survivor: uuid.UUID) -> str:
    """Why a body may not name a merged record, at the field that names it."""
    return f"the {label} was merged into {survivor}: link to that id"


def folded_in() -> audit.Changes:
    """The changes that say a new record was folded into its e-mail twin (the merge rule)."""
    return {"merged_ids": {"before": None, "after": ["(new)"]}}


async def initial_owner(
    session: AsyncSession,
    principal: Principal,
    *,
    sent: bool,
    owner_id: uuid.UUID | None,
    inherited: uuid.UUID | None = None,
) -> uuid.UUID | None:
    """A new record's owner: as sent (an active user of the organisation), else the owner of the
    record it comes from (`inherited`: an order's deal's), else its creator."""
    if not sent:
        return inherited if inherited is not None else principal.user_id
    if owner_id is not None:
        await users.ensure_assignable(session, principal, owner_id)
    return owner_id


async def check_new_owner(
    session: AsyncSession, principal: Principal, changes: Mapping[str, Any], current: uuid.UUID | None
) -> None:
    owner_id = changes.get("owner_id")
    if owner_id is not None and owner_id != current:
        await users.ensure_assignable(session, principal, owner_id)


async def editable(
    session: AsyncSession,
    principal: Principal,
    kind: RecordType[M],
    record_id: uuid.UUID,
    *,
    expected_version: int | None,
) -> M:
    """The record, locked for an update that `If-Match` allows and its archive state permits."""
    record: Any = await kind.repository(session, principal).locked(record_id, expected_version=expected_version)
    if getattr(record, "erased_at", None) is not None:
        raise Conflict(f"The {kind.label}'s data was erased; it cannot change")
    if record.archived_at is not None:
        raise Conflict(f"The {kind.label} is archived; restore it before changing it")
    return record  # type: ignore[no-any-return]


def emit_read_model_event(
    session: AsyncSession,
    actor: events.Actor,
    label: str,
    read_schema: type[BaseModel],
    record: Any,
    name: str,
    *,
    changes: audit.Changes | None = None,
) -> None:
    """`<label>.<name>` for a record of a resource without a `RecordType` (orders, contracts,
    tasks): its data is the record as `read_schema` shows it."""
    events.emit(
        session,
        organization_id=record.organization_id,
        type=f"{label}.{name}",
        entity_type=label,
        entity_id=record.id,
        data=read_schema.model_validate(record).model_dump(mode="json"),
        actor=actor,
        changes=changes,
    )


def emit_event(
    session: AsyncSession,
    principal: Principal,
    kind: RecordType[Any],
    record: Any,
    action: str,
    *,
    changes: audit.Changes | None = None,
    shown_from: Mapping[str, Any] | None = None,
) -> None:
    emit_event_as(session, events.Actor.of(principal), kind, record, action, changes=changes, shown_from=shown_from)


def emit_event_as(
    session: AsyncSession,
    actor: events.Actor,
    kind: RecordType[Any],
    record: Any,
    action: str,
    *,
    changes: audit.Changes | None = None,
    shown_from: Mapping[str, Any] | None = None,
) -> None:
    """The record's `<label>.<action>` event, and its transition events for the fields changed.
    `shown_from`: the record's values, all of them, when the caller holds them (a bulk write's new
    records): its data is validated from them, a third of the cost of reading every attribute."""
    data = kind.read_schema.model_validate(record if shown_from is None else shown_from).model_dump(mode="json")
    types = [action, *(event for field, event in kind.transitions.items() if changes and field in changes)]
    for name in types:
        events.emit(
            session,
            organization_id=record.organization_id,
            type=f"{kind.label}.{name}",
            entity_type=kind.label,
            entity_id=record.id,
            data=data,
            actor=actor,
            changes=changes,
        )


def announce(
    session: AsyncSession,
    principal: Principal,
    kind: RecordType[Any],
    record: Any,
    *,
    action: AuditAction,
    event: str,
    changes: audit.Changes,
) -> None:
    """A change's audit row and its event (with the same changes), in the change's transaction."""
    audit.record(session, principal, action=action, entity_type=kind.label, entity_id=record.id, changes=changes)
    emit_event(session, principal, kind, record, event, changes=changes)


def announce_created(session: AsyncSession, principal: Principal, kind: RecordType[Any], record: Any) -> None:
    """A new record's audit row (every value set) and its `created` event; the record is flushed."""
    audit.record(
        session,
        principal,
        action=AuditAction.create,
        entity_type=kind.label,
        entity_id=record.id,
        changes=audit.creation(audit.snapshot(record)),
    )
    emit_event(session, principal, kind, record, "created")


async def created(session: AsyncSession, principal: Principal, kind: RecordType[M], record: M) -> M:
    session.add(record)
    await session.flush()
    await kind.written(session, principal, [record])
    announce_created(session, principal, kind, record)
    await kind.announced(session, principal, [record])
    return record


async def updated(
    session: AsyncSession, principal: Principal, kind: RecordType[M], record: M, *, before: audit.Snapshot
) -> M:
    """Writes the update's audit row, if anything changed."""
    if delta := audit.diff(before, audit.snapshot(record)):
        await session.flush()
        await kind.written(session, principal, [record])
        announce(session, principal, kind, record, action=AuditAction.update, event="updated", changes=delta)
        await kind.announced(session, principal, [record])
    return record


def as_create(schema: type[S], changes: Mapping[str, Any], **fixed: Any) -> S:
    """An upsert's body (a patch) read as a new record's, with the rules a create has."""
    try:
        return schema.model_validate({**changes, **fixed})
    except ValidationError as exc:
        raise ValidationFailed.from_pydantic(exc, loc=("body",)) from exc


async def upsert_by_external_id(
    session: AsyncSession,
    principal: Principal,
    kind: RecordType[M],
    external_id: str,
    *,
    expected_version: int | None,
    sent_external_id: str | None,
    create: Callable[[], Awaitable[M]],
    update: Callable[[uuid.UUID], Awaitable[M]],
) -> tuple[M, bool]:
    """Creates the record another system knows by `external_id`, or updates it; True if created.

    Concurrent upserts of one id queue on a lock for it, so the second updates what the first
    created instead of failing on the unique index."""
    if sent_external_id not in (None, external_id):
        raise ValidationFailed(
            FieldError(("body", "external_id"), "differs from the external_id in the path (leave it out of the body)")
        )
    await lock_for_transaction(session, f"{kind.label}-external-id", f"{principal.organization_id}:{external_id}")
    model: Any = kind.model
    existing = await session.scalar(
        select(model.id).where(model.organization_id == principal.organization_id, model.external_id == external_id)
    )
    if existing is not None:
        return await update(existing), False
    if expected_version is not None:
        raise PreconditionFailed(f"No {kind.label} has external_id {external_id!r}, so If-Match cannot hold")
    return await create(), True


async def archive(
    session: AsyncSession,
    principal: Principal,
    kind: RecordType[M],
    record_id: uuid.UUID,
    *,
    expected_version: int | None,
) -> M:
    record: Any = await kind.repository(session, principal).locked(record_id, expected_version=expected_version)
    if record.archived_at is not None:
        raise Conflict(f"The {kind.label} is already archived")
    record.archived_at = utcnow()
    await session.flush()
    changes = {"archived_at": {"before": None, "after": record.archived_at.isoformat()}}
    announce(session, principal, kind, record, action=AuditAction.delete, event="archived", changes=changes)
    return record  # type: ignore[no-any-return]


async def restore(
    session: AsyncSession,
    principal: Principal,
    kind: RecordType[M],
    record_id: uuid.UUID,
    *,
    expected_version: int | None,
) -> M:
    record: Any = await kind.repository(session, principal).locked(record_id, expected_version=expected_version)
    if record.archived_at is None:
        raise Conflict(f"The {kind.label} is not archived")
    if getattr(record, "erased_at", None) is not None:
        raise Conflict(f"The {kind.label}'s data was erased; it stays archived")
    if (survivor := merged_into(record)) is not None:
        raise Conflict(f"The {kind.label} was merged into {survivor}; it stays archived")
    archived_at = record.archived_at
    record.archived_at = None
    await session.flush()
    changes = {"archived_at": {"before": archived_at.isoformat(), "after": None}}
    announce(session, principal, kind, record, action=AuditAction.restore, event="restored", changes=changes)
    return record  # type: ignore[no-any-return]


async def history(
    session: AsyncSession,
    principal: Principal,
    kind: RecordType[Any],
    record_id: uuid.UUID,
    *,
    cursor: str | None,
    limit: int,
) -> Page[AuditEntry]:
    """The record's audit rows, newest first; only for callers who may see the record."""
    await kind.repository(session, principal).get(record_id)
    audit_rows = TenantRepository(AuditEntry, session, principal, label="audit entry")
    statement = audit_rows.scoped().where(AuditEntry.entity_type == kind.label, AuditEntry.entity_id == record_id)
    return await audit_rows.page(
        statement,
        Keyset.of([], AuditEntry.id, id_descending=True),
        cursor=cursor,
        limit=limit,
    )


def builtin(column: ColumnElement[Any], name: str, field_type: FieldType, **extra: Any) -> FieldSpec:
    """A filter field over one of the model's own columns."""
    return FieldSpec(name=name, type=field_type, column=column, read=filters.attribute(name), **extra)


@dataclass(slots=True)
class BatchResult:
    index: int
    status: str  # created | updated | unchanged | skipped (imports) | failed
    id: uuid.UUID | None = None
    problem: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class BatchRules(Generic[M]):
    """How one resource takes part in batches: its schemas, its build and apply steps, the fields
    an upsert matches on (in order of preference), and the lookups to make once for all records."""

    kind: RecordType[M]
    create_schema: type[BaseModel]
    update_schema: type[BaseModel]
    build: Callable[[AsyncSession, Principal, Any], Awaitable[M]]
    apply: Callable[[AsyncSession, Principal, M, Any], Awaitable[None]]
    upsert_keys: tuple[str, ...]
    prefetch: Callable[[AsyncSession, Principal, list[dict[str, Any]]], Awaitable[None]]

    def schema_for(self, mode: str) -> type[BaseModel]:
        """An upsert's records are patches of the records they match; other modes' are new."""
        return self.update_schema if mode == "upsert" else self.create_schema


def failed_result(index: int, error: DomainError) -> BatchResult:
    problem = error.as_problem()
    if isinstance(error, ValidationFailed):
        # Field locations inside the record: ["body", "records", index, field], the detail too.
        problem["errors"] = [
            {"loc": ["body", "records", index, *e.loc[1:]] if e.loc[:1] == ("body",) else list(e.loc), "msg": e.msg}
            for e in error.errors
        ]
        problem["detail"] = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in problem["errors"])
    return BatchResult(index=index, status="failed", problem=problem)


def field_errors(result: BatchResult) -> list[FieldError]:
    """A failed record's problem as field errors (its detail, at the record, when it has none)."""
    problem = result.problem or {}
    if problem.get("errors"):
        return [FieldError(tuple(error["loc"]), error["msg"]) for error in problem["errors"]]
    return [FieldError(("body", "records", result.index), problem.get("detail", ""))]


async def _matches(
    session: AsyncSession, principal: Principal, kind: RecordType[M], key: str, values: set[Any]
) -> dict[Any, list[Any]]:
    """Records of the organisation (visible or not) holding each value of `key`, locked for the
    update. A merged record stands for its survivor (a merge repoints every merged record to the
    last survivor, so one step reaches it): the key still names the person or company it was."""
    if not values:
        return {}
    model: Any = kind.model
    column = getattr(model, key)
    rows = await session.execute(
        select(model)
        .where(model.organization_id == principal.organization_id, any_of(column, values))
        .order_by(model.id)
        .with_for_update()
    )
    holders = [(getattr(record, key), record) for record in rows.scalars()]
    survivor_ids = {survivor for _, record in holders if (survivor := merged_into(record)) is not None}
    survivors: dict[uuid.UUID, Any] = {}
    if survivor_ids:
        survivor_rows = await session.execute(
            select(model)
            .where(model.organization_id == principal.organization_id, any_of(model.id, survivor_ids))
            .with_for_update()
        )
        survivors = {record.id: record for record in survivor_rows.scalars()}
    found: dict[Any, list[Any]] = {}
    for value, record in holders:
        survivor = merged_into(record)
        standing_for = survivors.get(survivor, record) if survivor is not None else record
        same = found.setdefault(value, [])
        if all(other.id != standing_for.id for other in same):
            same.append(standing_for)
    return found


@dataclass(slots=True)
class BatchPlan(Generic[M]):
    """What a batch will do: a result for each record refused or left alone, the new records
    (built, not yet added) and the matched ones (changed in memory, with their before-image)."""

    results: list[BatchResult | None]
    new: list[tuple[int, Any]]
    existing: list[tuple[int, Any, audit.Snapshot]]
    # The indexes of new records folded into an existing one by the e-mail merge rule.
    folded: set[int] = dataclasses.field(default_factory=set)


async def plan_batch(
    session: AsyncSession,
    principal: Principal,
    rules: BatchRules[M],
    *,
    mode: str,
    items: Sequence[Mapping[str, Any] | BaseModel],
    keyless: str = "fail",
    fold_on_email: Callable[[M, M], None] | None = None,
    item_names: Sequence[str] | None = None,
) -> BatchPlan[M]:
    """Validates, matches and builds the records of a batch without writing them.

    `mode`: create (a record whose external_id exists fails), upsert (a match is updated) or
    skip_duplicates (a match, or an earlier record with the same key, is skipped). `keyless`:
    what an upsert does with a record without any key (fail, or create). `fold_on_email`: the
    organisation merges e-mail duplicates, so in create mode an e-mail match is filled in by it.
    An item may be a body already checked with the mode's schema (imports check theirs in
    another process). `item_names`: how a message names an earlier item (default `record <index>`;
    an import names the file's row).
    """
    kind = rules.kind
    results: list[BatchResult | None] = [None] * len(items)
    schema = rules.schema_for(mode)
    bodies: dict[int, BaseModel] = {}
    for index, raw in enumerate(items):
        if isinstance(raw, schema):
            bodies[index] = raw
            continue
        try:
            bodies[index] = schema.model_validate(raw)
        except ValidationError as exc:
            results[index] = failed_result(index, ValidationFailed.from_pydantic(exc, loc=("body",)))
    changes = {index: body.model_dump(include=body.model_fields_set) for index, body in bodies.items()}

    # Which record each upsert (or each create with an external_id) would touch.
    if mode == "create":
        keys: tuple[str, ...] = ("external_id", "email") if fold_on_email else ("external_id",)
    else:
        keys = rules.upsert_keys
    key_of: dict[int, tuple[str, Any]] = {}
    first_with: dict[tuple[str, Any], int] = {}
    for index, fields in changes.items():
        # Matched by its first key; an earlier record holding any of its keys is the same one
        # (keyed by external_id there and by e-mail here, they would otherwise both be created).
        present = [(name, fields[name]) for name in keys if fields.get(name) is not None]
        if not present:
            if mode == "upsert" and keyless == "fail":
                results[index] = failed_result(
                    index, ValidationFailed(FieldError(("body",), f"an upsert needs one of {', '.join(keys)}"))
                )
            continue
        if (repeated := next((held for held in present if held in first_with), None)) is not None:
            earlier = item_names[first_with[repeated]] if item_names else f"record {first_with[repeated]}"
            if mode == "skip_duplicates":
                results[index] = _skipped(index, f"{earlier} has the same {repeated[0]}")
            else:
                results[index] = failed_result(
                    index, ValidationFailed(FieldError(("body", repeated[0]), f"{earlier} has the same value"))
                )
            continue
        for held in present:
            first_with[held] = index
        key_of[index] = present[0]
    found: dict[str, dict[Any, list[Any]]] = {}
    for name in keys:
        values = {value for key_name, value in key_of.values() if key_name == name}
        found[name] = await _matches(session, principal, kind, name, values)
    matched_ids = [record.id for by_value in found.values() for same in by_value.values() for record in same]
    model: Any = kind.model
    visible_query = kind.repository(session, principal).scoped().with_only_columns(model.id)
    visible = set((await session.execute(visible_query.where(any_of(model.id, matched_ids)))).scalars())

    await rules.prefetch(session, principal, [changes[i] for i in bodies if results[i] is None])
    plan: BatchPlan[M] = BatchPlan(results, [], [])
    # The matched records change in memory only: `write_plan` writes them together.
    with session.no_autoflush:
        for index, body in bodies.items():
            if results[index] is not None:
                continue
            try:
                key = key_of.get(index)
                matched = found[key[0]].get(key[1], []) if key else []
                if key and key[0] == "email" and mode == "create" and fold_on_email is not None:
                    # As POST does: the first live contact the caller sees with it, else a new one.
                    matched = [record for record in matched if record.archived_at is None and record.id in visible][:1]
                if matched and mode == "skip_duplicates":
                    results[index] = _skipped(index, f"a {kind.label} with this {key[0]} exists", matched[0].id)  # type: ignore[index]
                    continue
                if len(matched) > 1:
                    raise Conflict(f"{len(matched)} {kind.label} records have this {key[0]}: use external_id")  # type: ignore[index]
                if matched and mode == "create" and key[0] == "external_id":  # type: ignore[index]
                    raise Conflict(f"A {kind.label} with this external_id exists: {matched[0].id}")
                if matched:
                    record = matched[0]
                    if record.id not in visible:
                        raise Conflict(f"A {kind.label} with this {key[0]} exists that you cannot see")  # type: ignore[index]
                    if record.archived_at is not None:
                        raise Conflict(f"The {kind.label} {record.id} is archived; restore it first")
                    before = audit.snapshot(record)
                    if mode == "create" and fold_on_email is not None:
                        fold_on_email(record, await rules.build(session, principal, body))
                        plan.folded.add(index)
                    else:
                        await rules.apply(session, principal, record, body)
                    plan.existing.append((index, record, before))
                else:
                    create_body = body if mode != "upsert" else as_create(rules.create_schema, changes[index])
                    plan.new.append((index, await rules.build(session, principal, create_body)))
            except DomainError as error:
                results[index] = failed_result(index, error)
    return plan


def _skipped(index: int, reason: str, record_id: uuid.UUID | None = None) -> BatchResult:
    return BatchResult(index=index, status="skipped", id=record_id, problem={"detail": reason})


async def announce_updates(
    session: AsyncSession, principal: Principal, kind: RecordType[Any], plan: BatchPlan[Any]
) -> None:
    """The matched records' results, with an audit row and event for each that changed (flushed).
    A new record folded into its e-mail twin is announced as `POST` announces it: a merge."""
    deltas = [(index, record, audit.diff(before, audit.snapshot(record))) for index, record, before in plan.existing]
    touched = [record for index, record, delta in deltas if delta or index in plan.folded]
    await kind.written(session, principal, touched)
    for index, record, delta in deltas:
        if index in plan.folded:
            changes = delta | folded_in()
            announce(session, principal, kind, record, action=AuditAction.merge, event="merged", changes=changes)
        elif delta:
            announce(session, principal, kind, record, action=AuditAction.update, event="updated", changes=delta)
        plan.results[index] = BatchResult(index=index, status="updated" if delta else "unchanged", id=record.id)
    await kind.announced(session, principal, touched)


async def write_batch(
    session: AsyncSession,
    principal: Principal,
    rules: BatchRules[M],
    *,
    mode: str,
    items: Sequence[Mapping[str, Any]],
    atomic: bool,
    fold_on_email: Callable[[M, M], None] | None = None,
) -> list[BatchResult]:
    """Creates (or upserts) up to BATCH_LIMIT records with one result each; a bad record fails
    alone unless `atomic`, when any failure writes nothing. Lookups (matches, owners, companies,
    custom field definitions) are made once for the batch; new rows are written with COPY and
    changed ones with one UPDATE per set of changed columns (`write_plan`)."""
    kind = rules.kind
    plan = await plan_batch(session, principal, rules, mode=mode, items=items, fold_on_email=fold_on_email)
    failed = [r for r in plan.results if r is not None]
    if atomic and failed:
        raise ValidationFailed(
            [error for result in failed for error in field_errors(result)],
            detail=f"{len(failed)} of {len(items)} records failed; nothing was written (atomic)",
        )
    await write_plan(session, principal, kind, plan)
    return [r for r in plan.results if r is not None]


async def write_plan(session: AsyncSession, principal: Principal, kind: RecordType[Any], plan: BatchPlan[Any]) -> None:
    """Writes a planned batch: the matched records' changes set-based (before anything else
    flushes them one by one), the new records with COPY, then the results, audit rows and events."""
    await update_changed(session, [record for _, record, _ in plan.existing])
    await insert_new(session, principal, kind, plan)
    await session.flush()
    await announce_updates(session, principal, kind, plan)


async def insert_new(session: AsyncSession, principal: Principal, kind: RecordType[Any], plan: BatchPlan[Any]) -> None:
    """Writes the plan's new records with COPY, with the audit rows and `created` events a
    single create writes (search grams made here rather than by the database's trigger)."""
    rows: list[dict[str, Any]] = []
    audit_rows: list[dict[str, Any]] = []
    for index, record in plan.new:
        values = insert_values(record)
        audit_rows.append(
            audit.entry_values(
                principal,
                action=AuditAction.create,
                entity_type=kind.label,
                entity_id=record.id,
                changes=audit.creation_from_values(values),
            )
        )
        values["search_grams"] = text_search.document_grams(kind.gram_document(record))
        rows.append(values)
        plan.results[index] = BatchResult(index=index, status="created", id=record.id)
    await copy_rows(session, kind.model, rows)
    await copy_rows(session, AuditEntry, audit_rows)
    await kind.written(session, principal, [record for _, record in plan.new])
    for _, record in plan.new:
        # `insert_values` set every column on the record, and `written` its derived values.
        emit_event(session, principal, kind, record, "created", shown_from=record.__dict__)
    await kind.announced(session, principal, [record for _, record in plan.new])
