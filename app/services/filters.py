"""The filter DSL: one JSON tree, compiled to SQL or evaluated on a record in memory.

    {"and": [{"field": "city", "op": "eq", "value": "上海"},
             {"not": {"field": "tags", "op": "contains", "value": "churned"}}]}

Nodes are `and` / `or` (lists), `not` (one node) and conditions `{field, op, value}`. Fields
come from a whitelist per entity (custom fields as `custom_fields.<key>`), ops from a whitelist
per field type; anything else is a 422 naming where in the tree it is. Both back ends give the
same answer for the same record (a property test holds them together):

- `ne` is "is distinct from": a record without a value is not equal to anything;
- `lt` … `gte`, `eq`, `in` are false on a missing value;
- `contains` / `starts_with` on text ignore case; on lists they test membership;
- `is_null: true` matches a missing value (and an empty list).
"""

from __future__ import annotations

import operator
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    Boolean,
    ColumnElement,
    Date,
    Numeric,
    and_,
    cast,
    false,
    func,
    not_,
    or_,
    true,
)
from sqlalchemy.dialects.postgresql import JSONB

from app.core.errors import FieldError, ValidationFailed
from app.core.pagination import SortKey, ValueKind

MAX_DEPTH = 8
MAX_CONDITIONS = 100
MAX_IN_VALUES = 1000
Loc = tuple[str | int, ...]


class FieldType(StrEnum):
    text = "text"
    enum = "enum"
    number = "number"
    integer = "integer"
    date = "date"
    datetime = "datetime"
    boolean = "boolean"
    uuid = "uuid"
    tags = "tags"  # a list of strings


class Op(StrEnum):
    eq = "eq"
    ne = "ne"
    lt = "lt"
    lte = "lte"
    gt = "gt"
    gte = "gte"
    in_ = "in"
    contains = "contains"
    starts_with = "starts_with"
    is_null = "is_null"


_ORDERED = {Op.eq, Op.ne, Op.lt, Op.lte, Op.gt, Op.gte, Op.in_, Op.is_null}
OPS_BY_TYPE: dict[FieldType, frozenset[Op]] = {
    FieldType.text: frozenset(_ORDERED | {Op.contains, Op.starts_with}),
    FieldType.enum: frozenset({Op.eq, Op.ne, Op.in_, Op.is_null}),
    FieldType.number: frozenset(_ORDERED),
    FieldType.integer: frozenset(_ORDERED),
    FieldType.date: frozenset(_ORDERED),
    FieldType.datetime: frozenset(_ORDERED),
    FieldType.boolean: frozenset({Op.eq, Op.ne, Op.is_null}),
    FieldType.uuid: frozenset({Op.eq, Op.ne, Op.in_, Op.is_null}),
    FieldType.tags: frozenset({Op.contains, Op.in_, Op.is_null}),
}
_SORT_KIND = {
    FieldType.text: ValueKind.text,
    FieldType.enum: ValueKind.text,
    FieldType.number: ValueKind.number,
    FieldType.integer: ValueKind.integer,
    FieldType.date: ValueKind.date,
    FieldType.datetime: ValueKind.datetime,
    FieldType.boolean: ValueKind.boolean,
    FieldType.uuid: ValueKind.uuid,
}


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """One filterable field: how SQL reads it, and how Python reads it off a record."""

    name: str
    type: FieldType
    column: ColumnElement[Any]
    read: Callable[[Any], Any]
    choices: frozenset[str] | None = None
    nullable: bool = True
    # Set for custom fields stored in JSONB: `eq` then uses `@>`, which the GIN index answers.
    json_path: tuple[ColumnElement[Any], str] | None = None

    @property
    def sortable(self) -> bool:
        return self.type in _SORT_KIND

    def sort_key(self, *, descending: bool) -> SortKey:
        return SortKey(
            self.name,
            self.column,
            _SORT_KIND[self.type],
            descending=descending,
            nullable=self.nullable,
        )


@dataclass(frozen=True, slots=True)
class FieldRegistry:
    entity: str
    fields: Mapping[str, FieldSpec]

    def get(self, name: str, loc: Loc) -> FieldSpec:
        spec = self.fields.get(name)
        if spec is None:
            raise ValidationFailed(FieldError(loc, f"unknown field `{name}` for {self.entity}"))
        return spec


def attribute(name: str) -> Callable[[Any], Any]:
    return lambda record: getattr(record, name)


def custom_field_spec(
    column: ColumnElement[Any],
    key: str,
    field_type: FieldType,
    choices: frozenset[str] | None,
) -> FieldSpec:
    """A custom field read from the record's JSONB column (`custom_fields ->> key`)."""
    text_value = column[key].astext
    sql: ColumnElement[Any]
    match field_type:
        case FieldType.number:
            sql = cast(text_value, Numeric)
        case FieldType.date:
            sql = cast(text_value, Date)
        case FieldType.boolean:
            sql = cast(text_value, Boolean)
        case FieldType.tags:
            sql = column[key]
        case _:
            sql = text_value

    def read(record: Any) -> Any:
        value = (record.custom_fields or {}).get(key)
        if value is None:
            return None
        match field_type:
            case FieldType.number:
                return Decimal(str(value))
            case FieldType.date:
                return date.fromisoformat(value)
            case _:
                return value

    return FieldSpec(
        name=f"custom_fields.{key}",
        type=field_type,
        column=sql,
        read=read,
        choices=choices,
        json_path=(column, key),
    )


# --- the tree ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Condition:
    spec: FieldSpec
    op: Op
    value: Any


@dataclass(frozen=True, slots=True)
class And:
    items: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Or:
    items: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Not:
    item: Node


Node = Condition | And | Or | Not


@dataclass
class _Budget:
    conditions: int = 0
    errors: list[FieldError] = field(default_factory=list)


def parse(raw: Any, registry: FieldRegistry, *, loc: Loc = ("body", "filter")) -> Node:
    """Validates a JSON filter tree against the registry; every problem is reported at once."""
    budget = _Budget()
    node = _parse(raw, registry, loc, 1, budget)
    if budget.errors:
        raise ValidationFailed(budget.errors)
    assert node is not None
    return node


def _parse(raw: Any, registry: FieldRegistry, loc: Loc, depth: int, budget: _Budget) -> Node | None:
    if depth > MAX_DEPTH:
        budget.errors.append(FieldError(loc, f"filters nest at most {MAX_DEPTH} levels deep"))
        return None
    if not isinstance(raw, dict) or not raw:
        budget.errors.append(FieldError(loc, "a filter node is an object: {and|or|not} or {field, op, value}"))
        return None
    if keys := raw.keys() & {"and", "or"}:
        if len(raw) != 1:
            budget.errors.append(FieldError(loc, "`and`/`or` must be the node's only key"))
            return None
        key = next(iter(keys))
        items = raw[key]
        if not isinstance(items, list) or not items:
            budget.errors.append(FieldError((*loc, key), "must be a non-empty list of filter nodes"))
            return None
        parsed = [_parse(item, registry, (*loc, key, i), depth + 1, budget) for i, item in enumerate(items)]
        children = tuple(p for p in parsed if p is not None)
        return And(children) if key == "and" else Or(children)
    if "not" in raw:
        if len(raw) != 1:
            budget.errors.append(FieldError(loc, "`not` must be the node's only key"))
            return None
        child = _parse(raw["not"], registry, (*loc, "not"), depth + 1, budget)
        return Not(child) if child is not None else None
    return _parse_condition(raw, registry, loc, budget)


def _parse_condition(raw: dict[str, Any], registry: FieldRegistry, loc: Loc, budget: _Budget) -> Condition | None:
    budget.conditions += 1
    if budget.conditions > MAX_CONDITIONS:
        if budget.conditions == MAX_CONDITIONS + 1:
            budget.errors.append(FieldError(loc, f"at most {MAX_CONDITIONS} conditions"))
        return None
    unknown = raw.keys() - {"field", "op", "value"}
    if unknown:
        budget.errors.append(FieldError(loc, f"unknown keys: {', '.join(sorted(unknown))}"))
        return None
    name, op_name = raw.get("field"), raw.get("op")
    if not isinstance(name, str):
        budget.errors.append(FieldError((*loc, "field"), "must be a field name"))
        return None
    try:
        spec = registry.get(name, (*loc, "field"))
    except ValidationFailed as exc:
        budget.errors.extend(exc.errors)
        return None
    try:
        op = Op(str(op_name))
    except ValueError:
        budget.errors.append(
            FieldError(
                (*loc, "op"),
                f"unknown op `{op_name}`; one of {', '.join(o.value for o in Op)}",
            )
        )
        return None
    if op not in OPS_BY_TYPE[spec.type]:
        allowed = ", ".join(sorted(o.value for o in OPS_BY_TYPE[spec.type]))
        budget.errors.append(
            FieldError(
                (*loc, "op"),
                f"`{op.value}` does not apply to {spec.type.value} field `{name}`; use {allowed}",
            )
        )
        return None
    if "value" not in raw:
        budget.errors.append(FieldError((*loc, "value"), "is required"))
        return None
    try:
        value = _coerce_operand(spec, op, raw["value"])
    except ValueError as exc:
        budget.errors.append(FieldError((*loc, "value"), str(exc)))
        return None
    return Condition(spec, op, value)


def _coerce_operand(spec: FieldSpec, op: Op, raw: Any) -> Any:
    if op is Op.is_null:
        if not isinstance(raw, bool):
            raise ValueError("is_null takes true or false")
        return raw
    if op is Op.in_:
        if not isinstance(raw, list) or not raw or len(raw) > MAX_IN_VALUES:
            raise ValueError(f"`in` takes a list of 1 to {MAX_IN_VALUES} values")
        return tuple(_coerce_scalar(spec, item) for item in raw)
    if op in (Op.contains, Op.starts_with) and spec.type is FieldType.text:
        if not isinstance(raw, str) or not raw:
            raise ValueError(f"`{op.value}` takes a non-empty string")
        return raw
    return _coerce_scalar(spec, raw)


def _coerce_scalar(spec: FieldSpec, raw: Any) -> Any:
    match spec.type:
        case FieldType.text | FieldType.enum | FieldType.tags:
            if not isinstance(raw, str):
                raise ValueError("must be a string")
            if spec.choices is not None and raw not in spec.choices:
                raise ValueError(f"must be one of {', '.join(sorted(spec.choices))}")
            return raw
        case FieldType.number:
            if isinstance(raw, bool) or not isinstance(raw, int | float | str):
                raise ValueError("must be a number")
            try:
                number = Decimal(str(raw))
            except InvalidOperation as exc:
                raise ValueError("must be a number") from exc
            if not number.is_finite():
                raise ValueError("must be a finite number")
            return number
        case FieldType.integer:
            if isinstance(raw, bool) or not isinstance(raw, int):
                raise ValueError("must be an integer")
            return raw
        case FieldType.date:
            try:
                return date.fromisoformat(raw)
            except (TypeError, ValueError) as exc:
                raise ValueError("must be a date, YYYY-MM-DD") from exc
        case FieldType.datetime:
            try:
                moment = datetime.fromisoformat(raw)
            except (TypeError, ValueError) as exc:
                raise ValueError("must be an ISO 8601 date-time") from exc
            if moment.tzinfo is None:
                raise ValueError("must carry a UTC offset, such as 2026-01-31T08:00:00Z")
            return moment
        case FieldType.boolean:
            if not isinstance(raw, bool):
                raise ValueError("must be true or false")
            return raw
        case FieldType.uuid:
            try:
                return uuid.UUID(str(raw))
            except ValueError as exc:
                raise ValueError("must be a UUID") from exc


# --- SQL ----------------------------------------------------------------------------------


def to_sql(node: Node) -> ColumnElement[bool]:
    match node:
        case And(items):
            return and_(true(), *(to_sql(item) for item in items))
        case Or(items):
            return or_(false(), *(to_sql(item) for item in items))
        case Not(item):
            # SQL's NOT leaves NULL as NULL (a missing value would match neither a condition nor
            # its negation); IS NOT TRUE is two-valued, as the in-memory evaluator is.
            return to_sql(item).is_not(true())
        case Condition():
            return _condition_sql(node)


def _escape_like(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


_ORDERING = {Op.lt: operator.lt, Op.lte: operator.le, Op.gt: operator.gt, Op.gte: operator.ge}


def _condition_sql(condition: Condition) -> ColumnElement[bool]:
    spec, op, value = condition.spec, condition.op, condition.value
    column: ColumnElement[Any] = spec.column
    if spec.type is FieldType.tags:
        return _list_sql(spec, op, value)
    if spec.type is FieldType.text and op in (Op.lt, Op.lte, Op.gt, Op.gte):
        # Code-point order, as Python compares; the database's collation might not agree.
        column = column.collate("C")
    match op:
        case Op.is_null:
            return column.is_(None) if value else column.is_not(None)
        case Op.eq:
            if spec.json_path is not None and spec.type in (
                FieldType.text,
                FieldType.enum,
                FieldType.boolean,
            ):
                json_column, key = spec.json_path
                return json_column.op("@>")(cast({key: value}, JSONB))
            result: ColumnElement[bool] = column == value
            return result
        case Op.ne:
            return column.is_distinct_from(value)
        case Op.lt | Op.lte | Op.gt | Op.gte:
            ordered: ColumnElement[bool] = _ORDERING[op](column, value)
            return ordered
        case Op.in_:
            return column.in_(value)
        case Op.contains:
            return column.ilike(f"%{_escape_like(value)}%", escape="\\")
        case Op.starts_with:
            return column.ilike(f"{_escape_like(value)}%", escape="\\")
    raise AssertionError(op)


def _list_sql(spec: FieldSpec, op: Op, value: Any) -> ColumnElement[bool]:
    if spec.json_path is not None:  # a multi-select custom field: a JSON array
        json_column, key = spec.json_path
        match op:
            case Op.contains:
                return json_column.op("@>")(cast({key: [value]}, JSONB))
            case Op.in_:
                return or_(*(json_column.op("@>")(cast({key: [item]}, JSONB)) for item in value))
            case Op.is_null:
                empty = or_(spec.column.is_(None), spec.column == cast([], JSONB))
                return empty if value else not_(empty)
    else:
        match op:
            case Op.contains:
                return spec.column.contains([value])
            case Op.in_:
                overlaps: ColumnElement[bool] = spec.column.overlap(list(value))
                return overlaps
            case Op.is_null:
                empty = func.cardinality(spec.column) == 0
                return empty if value else not_(empty)
    raise AssertionError(op)


# --- in memory ----------------------------------------------------------------------------


def matches(node: Node, record: Any) -> bool:
    match node:
        case And(items):
            return all(matches(item, record) for item in items)
        case Or(items):
            return any(matches(item, record) for item in items)
        case Not(item):
            return not matches(item, record)
        case Condition():
            return _condition_matches(node, node.spec.read(record))


def _condition_matches(condition: Condition, actual: Any) -> bool:
    op, value = condition.op, condition.value
    if condition.spec.type is FieldType.tags:
        items: Sequence[Any] = actual or []
        match op:
            case Op.contains:
                return value in items
            case Op.in_:
                return any(v in items for v in value)
            case Op.is_null:
                return (len(items) == 0) is value
    if op is Op.is_null:
        return (actual is None) is value
    if op is Op.ne:
        return actual is None or actual != value
    if actual is None:
        return False
    match op:
        case Op.eq:
            return bool(actual == value)
        case Op.lt | Op.lte | Op.gt | Op.gte:
            return bool(_ORDERING[op](actual, value))
        case Op.in_:
            return actual in value
        case Op.contains:
            return value.lower() in str(actual).lower()
        case Op.starts_with:
            return str(actual).lower().startswith(value.lower())
    raise AssertionError(op)


# --- sorting ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SortSpec:
    keys: list[SortKey]
    # Direction of the `id` tie-breaker; None follows the first key.
    id_descending: bool | None = None


def parse_sort(raw: Sequence[str] | str | None, registry: FieldRegistry, *, loc: Loc) -> SortSpec:
    """`"last_name,-created_at"` or `["last_name", "-created_at"]`; `id` may close the list."""
    if raw is None:
        return SortSpec([])
    items = [p.strip() for p in (raw.split(",") if isinstance(raw, str) else raw)]
    keys: list[SortKey] = []
    errors: list[FieldError] = []
    seen: set[str] = set()
    id_desc: bool | None = None
    for position, item in enumerate(items):
        descending = item.startswith("-")
        name = item.lstrip("-+")
        if not name or name in seen:
            errors.append(FieldError(loc, f"`{item}` is empty or repeated"))
            continue
        seen.add(name)
        if name == "id":
            if position != len(items) - 1:
                errors.append(FieldError(loc, "`id` can only be the last sort key"))
            id_desc = descending
            continue
        spec = registry.fields.get(name)
        if spec is None or not spec.sortable:
            errors.append(FieldError(loc, f"cannot sort {registry.entity} by `{name}`"))
            continue
        keys.append(spec.sort_key(descending=descending))
    if len(keys) > 4:
        errors.append(FieldError(loc, "at most 4 sort keys"))
    if errors:
        raise ValidationFailed(errors)
    return SortSpec(keys, id_desc)
