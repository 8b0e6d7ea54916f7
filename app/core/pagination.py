"""Keyset (cursor) pagination over any sort, never OFFSET (DESIGN.md §3–4).

A page is the rows strictly after the cursor in `ORDER BY <keys…>, id`. The cursor carries the
last row's key values and the sort it was made for, so a cursor cannot be replayed against
another sort. NULLs sort as PostgreSQL sorts them by default (last ascending, first descending),
and the "after" predicate spells that out, so nullable keys page correctly too.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any, Generic, TypeVar

import orjson
from sqlalchemy import ColumnElement, Select, and_, false, or_, tuple_
from sqlalchemy.orm import InstrumentedAttribute

from app.core.errors import FieldError, ValidationFailed

DEFAULT_LIMIT = 50
MAX_LIMIT = 500

T = TypeVar("T")
IdColumn = ColumnElement[Any] | InstrumentedAttribute[Any]


class ValueKind(StrEnum):
    text = "text"
    number = "number"
    integer = "integer"
    date = "date"
    datetime = "datetime"
    boolean = "boolean"
    uuid = "uuid"


@dataclass(frozen=True, slots=True)
class SortKey:
    name: str
    expression: ColumnElement[Any]
    kind: ValueKind
    descending: bool = False
    nullable: bool = True


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None


def _encode_value(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, Decimal | uuid.UUID):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)


def _decode_value(raw: Any, kind: ValueKind) -> Any:
    if raw is None:
        return None
    match kind:
        case ValueKind.text:
            return str(raw)
        case ValueKind.number:
            return Decimal(str(raw))
        case ValueKind.integer:
            return int(raw)
        case ValueKind.date:
            return date.fromisoformat(raw)
        case ValueKind.datetime:
            return datetime.fromisoformat(raw)
        case ValueKind.boolean:
            if not isinstance(raw, bool):
                raise ValueError("not a boolean")
            return raw
        case ValueKind.uuid:
            return uuid.UUID(str(raw))


def _signature(keys: Sequence[SortKey], id_descending: bool) -> str:
    parts = [("-" if k.descending else "") + k.name for k in keys]
    return ",".join([*parts, "-id" if id_descending else "id"])


def _bad_cursor(msg: str) -> ValidationFailed:
    return ValidationFailed(FieldError(("query", "cursor"), msg))


@dataclass(frozen=True, slots=True)
class Keyset:
    keys: tuple[SortKey, ...]
    id_column: IdColumn
    id_descending: bool

    @classmethod
    def of(
        cls,
        keys: Sequence[SortKey],
        id_column: IdColumn,
        *,
        id_descending: bool | None = None,
    ) -> Keyset:
        if id_descending is None:
            id_descending = keys[0].descending if keys else False
        return cls(tuple(keys), id_column, id_descending)

    @property
    def signature(self) -> str:
        return _signature(self.keys, self.id_descending)

    def encode(self, values: Sequence[Any], row_id: uuid.UUID) -> str:
        payload = {
            "s": self.signature,
            "v": [_encode_value(v) for v in values],
            "i": str(row_id),
        }
        return base64.urlsafe_b64encode(orjson.dumps(payload)).rstrip(b"=").decode()

    def decode(self, cursor: str) -> tuple[list[Any], uuid.UUID]:
        try:
            payload = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
            if not isinstance(payload, dict):
                raise ValueError
            raw_values, raw_id, signature = payload["v"], payload["i"], payload["s"]
        except (
            ValueError,
            KeyError,
            TypeError,
            binascii.Error,
            orjson.JSONDecodeError,
        ) as exc:
            raise _bad_cursor("Malformed cursor") from exc
        if signature != self.signature:
            raise _bad_cursor("This cursor was made for another sort order")
        if not isinstance(raw_values, list) or len(raw_values) != len(self.keys):
            raise _bad_cursor("Malformed cursor")
        try:
            values = [_decode_value(raw, key.kind) for raw, key in zip(raw_values, self.keys, strict=True)]
            return values, uuid.UUID(str(raw_id))
        except (ValueError, TypeError, InvalidOperation) as exc:
            raise _bad_cursor("Malformed cursor") from exc

    def order_by(self) -> list[ColumnElement[Any]]:
        clauses: list[ColumnElement[Any]] = [
            k.expression.desc().nulls_first() if k.descending else k.expression.asc().nulls_last() for k in self.keys
        ]
        clauses.append(self.id_column.desc() if self.id_descending else self.id_column.asc())
        return clauses

    def after(self, values: Sequence[Any], row_id: uuid.UUID) -> ColumnElement[bool]:
        directions = {k.descending for k in self.keys} | {self.id_descending}
        if len(directions) == 1 and all(v is not None for v in values) and not any(k.nullable for k in self.keys):
            # One direction, no NULLs: a row comparison, which a matching index answers directly.
            left = tuple_(*(k.expression for k in self.keys), self.id_column)
            right = tuple_(*values, row_id)
            return left < right if self.id_descending else left > right
        predicate: ColumnElement[bool] = self.id_column < row_id if self.id_descending else self.id_column > row_id
        for key, value in reversed(list(zip(self.keys, values, strict=True))):
            beyond, level = _beyond(key, value)
            predicate = or_(beyond, and_(level, predicate))
        return predicate

    def apply(self, statement: Select[Any], *, cursor: str | None, limit: int) -> Select[Any]:
        """Adds the sort keys as trailing columns, so the last row's values make the next cursor."""
        statement = statement.add_columns(*(k.expression for k in self.keys))
        if cursor:
            values, row_id = self.decode(cursor)
            statement = statement.where(self.after(values, row_id))
        return statement.order_by(*self.order_by()).limit(limit + 1)

    def page(self, rows: Sequence[Any], *, limit: int, id_of: Any) -> Page[Any]:
        """Rows are `(entity, key values…)` tuples from `apply`; returns the entities."""
        has_more = len(rows) > limit
        rows = rows[:limit]
        items = [row[0] for row in rows]
        next_cursor = None
        if has_more and rows:
            last = rows[-1]
            next_cursor = self.encode(list(last[1:]), id_of(last[0]))
        return Page(items=items, next_cursor=next_cursor)


def _beyond(key: SortKey, value: Any) -> tuple[ColumnElement[bool], ColumnElement[bool]]:
    """(strictly after `value` on this key, level with it) under PostgreSQL's NULL placement."""
    column = key.expression
    if key.descending:  # NULLS FIRST, then values high to low
        if value is None:
            return column.is_not(None), column.is_(None)
        return column < value, column == value
    # NULLS LAST, after values low to high
    if value is None:
        return false(), column.is_(None)
    if key.nullable:
        return or_(column > value, column.is_(None)), column == value
    return column > value, column == value
