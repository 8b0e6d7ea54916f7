"""CSV for spreadsheets: records flattened to cells, and cells that a spreadsheet would run as a
formula (`=`, `+`, `-`, `@`, tab, carriage return first) prefixed with `'` (OWASP's advice on
CSV injection). UTF-8 with a byte-order mark, so Excel reads Chinese text as such."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any, Final

from pydantic import BaseModel

from app.core.errors import FieldError, ValidationFailed

_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
CUSTOM_COLUMN_PREFIX: Final = "custom_fields."
# The shape of a custom field's key (CustomFieldCreate.key), for callers that cannot look the
# organisation's definitions up: such a column name is never a formula, at worst an empty column.
_CUSTOM_KEY = re.compile(r"[a-z][a-z0-9_]{0,63}")


def safe_cell(value: Any) -> str:
    text = cell_text(value)
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


def cell_text(value: Any) -> str:
    """A value as a cell shows it, before any escaping."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "; ".join(
            cell_text(next(iter(item.values()), "")) if isinstance(item, dict) else cell_text(item) for item in value
        )
    return str(value)


def flatten(record: Mapping[str, Any]) -> dict[str, Any]:
    """One level deep: `custom_fields` become `custom_fields.<key>` columns."""
    flat: dict[str, Any] = {}
    for key, value in record.items():
        if isinstance(value, dict):
            for inner, inner_value in value.items():
                flat[f"{key}.{inner}"] = inner_value
        else:
            flat[key] = value
    return flat


def record_columns(schema: type[BaseModel], custom_keys: Iterable[str]) -> list[str]:
    """Every column a record read as `schema` flattens to: its fields, then one per custom field."""
    fields = [f for f in (*schema.model_fields, *schema.model_computed_fields) if f != "custom_fields"]
    return fields + [CUSTOM_COLUMN_PREFIX + key for key in sorted(custom_keys)]


def check_columns(
    chosen: Sequence[str], known: Collection[str], *, loc: tuple[str, ...], any_custom_key: bool = False
) -> None:
    """Refuses column names that are not the record's (a name would otherwise become a header
    cell as it was typed, formula included, over an empty column). With `any_custom_key`, every
    well-formed `custom_fields.<key>` passes."""
    unknown = [
        column
        for column in chosen
        if column not in known
        and not (
            any_custom_key
            and column.startswith(CUSTOM_COLUMN_PREFIX)
            and _CUSTOM_KEY.fullmatch(column.removeprefix(CUSTOM_COLUMN_PREFIX))
        )
    ]
    if unknown:
        raise ValidationFailed(FieldError(loc, "unknown columns: " + ", ".join(repr(column) for column in unknown)))


def header(columns: Sequence[str]) -> str:
    """The first line of a file written row by row with `line`, byte-order mark included."""
    return "\ufeff" + line(columns)


def line(cells: Iterable[Any]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerow([safe_cell(cell) for cell in cells])
    return buffer.getvalue()


def render(rows: Iterable[Mapping[str, Any]], columns: Sequence[str]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow([safe_cell(column) for column in columns])
    for row in rows:
        writer.writerow([safe_cell(row.get(column)) for column in columns])
    return ("\ufeff" + buffer.getvalue()).encode()
